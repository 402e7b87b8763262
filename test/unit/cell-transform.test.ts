import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';

import { transformCell } from '../../engine/cell-transform';

/** Runs cells one after another in one namespace, as an engine does. */
function namespace(): (source: string) => Promise<unknown> {
  const context = vm.createContext({ require, console, setTimeout });
  return async (source) => {
    const { code, isAsync } = transformCell(source);
    const value: unknown = new vm.Script(code).runInContext(context, { breakOnSigint: true });
    return isAsync ? await value : value;
  };
}

describe('transformCell', () => {
  it('lets a later cell declare a const again', async () => {
    const run = namespace();
    assert.equal(await run('const x = 1'), undefined);
    assert.equal(await run('const x = 2; x'), 2);
    assert.equal(await run('x + 1'), 3);
  });

  it('keeps let variables and lets them be declared again', async () => {
    const run = namespace();
    await run('let y = 1');
    assert.equal(await run('y += 1; y'), 2);
    assert.equal(await run('let y = 10; let z; y'), 10);
    assert.equal(await run('typeof z'), 'undefined');
  });

  it('hoists functions and lets a later cell declare them again', async () => {
    const run = namespace();
    assert.equal(await run('const a = f(); function f() { return 1; }\na'), 1);
    assert.equal(await run('function f() { return 2; }'), undefined);
    assert.equal(await run('f()'), 2);
  });

  it('lets a later cell declare a class again', async () => {
    const run = namespace();
    await run('class C { m() { return 1; } }');
    assert.equal(await run('class C { m(): number { return 2; } }\nnew C().m()'), 2);
    assert.equal(await run('C.name'), 'C');
  });

  it('keeps enums, and a redeclared enum replaces the earlier one', async () => {
    const run = namespace();
    assert.equal(await run('enum Color { Red, Green }\nColor.Green'), 1);
    assert.equal(await run('Color[0]'), 'Red');
    await run('enum Color { Blue = 5 }');
    assert.equal(await run('JSON.stringify(Color)'), '{"5":"Blue","Blue":5}');
  });

  it('assigns destructuring declarations', async () => {
    const run = namespace();
    await run(
      'const obj = { a: 1, b: [2, 3, 4], c: { d: 5 } };\n' +
        'const { a, b: [first, ...others], c: { d }, e = 6, ...rest } = obj;\n' +
        'let [p, , q = 9] = [7, 8];',
    );
    assert.equal(
      await run('JSON.stringify({ a, first, others, d, e, rest, p, q })'),
      '{"a":1,"first":2,"others":[3,4],"d":5,"e":6,"rest":{},"p":7,"q":9}',
    );
  });

  it('strips type annotations, interfaces, type aliases, generics and casts', async () => {
    const run = namespace();
    const cell = [
      'interface Point { x: number; y: number }',
      'type Pair<T> = [T, T];',
      'function swap<T>([a, b]: Pair<T>): Pair<T> { return [b, a]; }',
      'const pt: Point = { x: 1, y: 2 } as Point;',
      'declare const nothing: string;',
      'const total = (swap<number>([pt.x, pt.y])[0] as unknown as number) + pt.y!;',
      'total',
    ].join('\n');
    assert.equal(await run(cell), 4);
  });

  it('evaluates to the last expression statement, otherwise to undefined', async () => {
    const run = namespace();
    assert.equal(await run('1 + 1'), 2);
    assert.equal(await run('const v = 1'), undefined);
    assert.equal(await run('v; let w = 2'), undefined);
    assert.equal(await run('v; function g() {}'), undefined);
    assert.equal(await run('if (v) { 5 }'), undefined);
    assert.equal(await run('v + 1 // a comment\nexport {};\ntype T = string;'), 2);
    assert.equal(await run('// only a comment\n/* and another */'), undefined);
    assert.equal(await run(''), undefined);
  });

  it('supports top-level await', async () => {
    const run = namespace();
    const { isAsync } = transformCell('const v = await Promise.resolve(5); v * 2');
    assert.equal(isAsync, true);
    assert.equal(await run('const v = await Promise.resolve(5); v * 2'), 10);
    assert.equal(await run('v'), 5);
    assert.equal(await run('await new Promise((resolve) => setTimeout(resolve, 1)); v'), 5);
    assert.equal(await run('const late = await Promise.resolve(1);'), undefined);
    assert.equal(await run('late'), 1);
  });

  it('keeps functions, classes and nested var declarations of an async cell', async () => {
    const run = namespace();
    const cell = [
      'async function* numbers() { yield 1; yield 2; }',
      'let sum = 0;',
      'for await (const n of numbers()) sum += n;',
      'for (var i = 0; i < 2; i++) { var last = i; }',
      'class K { value = sum; }',
      'await null;',
    ].join('\n');
    assert.equal(await run(cell), null);
    assert.equal(await run('JSON.stringify([sum, i, last, new K().value])'), '[3,2,1,3]');
  });

  it('imports a namespace for use in later cells', async () => {
    const run = namespace();
    assert.equal(await run("import * as path from 'node:path'"), undefined);
    assert.equal(await run("path.join('a', 'b')"), path.join('a', 'b'));
  });

  it('imports named bindings', async () => {
    const run = namespace();
    await run("import { join, basename as base, type ParsedPath } from 'node:path';");
    assert.equal(
      await run("const parsed: ParsedPath | undefined = undefined; join('a', 'b')"),
      path.join('a', 'b'),
    );
    assert.equal(await run("base('/x/y.txt')"), 'y.txt');
  });

  it('imports the default of CommonJS and transpiled ES modules', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cell-transform-'));
    try {
      const cjs = path.join(dir, 'cjs.js');
      const esm = path.join(dir, 'esm.js');
      fs.writeFileSync(cjs, 'module.exports = function greet() { return "hi"; };');
      fs.writeFileSync(esm, 'exports.__esModule = true; exports.default = 42; exports.named = 1;');
      const run = namespace();
      await run(`import greet from ${JSON.stringify(cjs)};`);
      assert.equal(await run('greet()'), 'hi');
      await run(`import answer, { named } from ${JSON.stringify(esm)};`);
      assert.equal(await run('answer + named'), 43);
      await run(`import fsx = require('node:fs');`);
      assert.equal(await run('typeof fsx.readFileSync'), 'function');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps exported declarations and never refers to exports or module', async () => {
    const run = namespace();
    const cell = [
      "import 'node:path';",
      "import def, * as all from 'node:events';",
      'export const shared = 1;',
      'export function twice(n: number) { return 2 * n; }',
      'export class Box {}',
      'export { shared as alias };',
      'export = shared;',
    ].join('\n');
    const { code } = transformCell(cell);
    assert.doesNotMatch(code, /\b(exports|module)\b/);
    assert.equal(await run(cell), 1);
    assert.equal(
      await run('`${def === all.EventEmitter} ${twice(shared)} ${Box.name}`'),
      'true 2 Box',
    );
  });

  it('throws a SyntaxError naming the line and column of the original cell', () => {
    const source = 'const a: number = 1;\ninterface I { x: string }\nconst b = = 2;';
    assert.throws(
      () => transformCell(source, 'cell-7'),
      (error: unknown) => {
        assert.ok(error instanceof SyntaxError);
        assert.match(error.message, /^cell-7:3:11: Expression expected\./);
        assert.match(error.message, /const b = = 2;\n {14}\^/);
        return true;
      },
    );
  });

  it('does not report type errors', () => {
    assert.doesNotThrow(() => transformCell('const s: string = 1; undefinedName.foo'));
  });

  it('runs loops and conditions over variables of earlier cells', async () => {
    const run = namespace();
    await run('const items = [1, 2, 3, 4];\nlet evens = 0;');
    const cell = [
      'let total: number = 0;',
      'for (const item of items) {',
      '  if (item % 2 === 0) { evens++; } else { total += item; }',
      '}',
      'for (let k = 0; k < items.length; k++) total += items[k];',
      '`${total}/${evens}`',
    ].join('\n');
    assert.equal(await run(cell), '14/2');
  });

  it('keeps a cell without await synchronous, so that it can be interrupted', () => {
    const { code, isAsync } = transformCell('let spins = 0;\nwhile (true) { spins++; }');
    assert.equal(isAsync, false);
    assert.doesNotMatch(code, /async/);
    const context = vm.createContext({});
    assert.throws(() => new vm.Script(code).runInContext(context, { timeout: 50 }), /timed out/);
    assert.ok((context as { spins: number }).spins > 0);
  });
  it('runs a cell without types as written, so that its errors point at its own lines', async () => {
    // As it stands, which compiling would reformat: the cell took the path without the compiler.
    assert.match(transformCell('x  =  1 // spaced').code, /x {2}= {2}1;? \/\/ spaced/);
    const cells = [
      'const a = 1;\nlet b = 2;\nnull.boom;',
      'const a = await 1;\nlet b = 2;\nnull.boom;',
      'const a: number = 1;\nlet b = 2;\nnull.boom;',
    ];
    for (const source of cells) {
      const { code, isAsync } = transformCell(source);
      const context = vm.createContext({});
      const run = async (): Promise<unknown> => {
        const value: unknown = new vm.Script(code, { filename: 'cell-9' }).runInContext(context);
        return isAsync ? await value : value;
      };
      await assert.rejects(run, (e: Error) => {
        assert.match(String(e.stack), /cell-9:3:/, `${source}: ${e.stack}`);
        return true;
      });
    }
  });

  it('keeps statements apart where a cell leaves semicolons out', async () => {
    const run = namespace();
    assert.equal(await run('let q = 5\nexport {}\n(q)'), 5);
    assert.equal(await run('const f = () => 2\nf()\nconst { a } = { a: 3 }\na'), 3);
    assert.equal(await run("import * as p from 'node:path'\n(p.sep)"), path.sep);
    // What the source itself joins stays joined: `b = f\n(3)` calls f.
    assert.equal(await run('let b = f\n(3)\nb'), 2);
  });

  it('strips what plain JavaScript would read otherwise, such as a generic call', async () => {
    const run = namespace();
    await run('function id(v) { return v; }\nconst number = 0;');
    // As JavaScript, `(id < number) > 3`: false.
    assert.equal(await run('id<number>(3)'), 3);
    assert.equal(
      await run(
        'class P { constructor(private x: number) {} get() { return this.x; } }\nnew P(4).get()',
      ),
      4,
    );
    assert.equal(await run('let d!: number; d = 5; d'), 5);
  });

  it('gives the same script for the same cell, and names each run in its syntax errors', () => {
    assert.equal(transformCell('const same = 1'), transformCell('const same = 1'));
    for (const name of ['cell-1', 'cell-2']) {
      assert.throws(() => transformCell('const = 1', name), new RegExp(`^SyntaxError: ${name}:1:`));
    }
  });
});
