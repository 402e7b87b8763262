// Turns a notebook cell of TypeScript into a script for an engine's persistent `vm` namespace.
//
// Two steps: the types are stripped (and syntax errors reported against the original cell), then
// the TypeScript parser reads the JavaScript and its top-level statements are rewritten by text
// splicing, so that declarations become properties of the context's global object. A `vm`
// context keeps top-level `let`/`const`/`class` of earlier scripts in one lexical scope, so
// declaring a name again in a later cell would throw; `var` and `function` declarations are
// global properties instead and may be repeated, so every top-level name is hoisted as `var`
// and its declaration turned into an assignment.
//
// Stripping types with `transpileModule` costs about a millisecond a cell, a tiny task's whole
// round trip; most cells (`x = f(y)`, `const a = 1`) have no types at all. So the cell is parsed
// first (tens of microseconds), and only one with TypeScript syntax or a syntax error goes
// through `transpileModule`; the others are rewritten as they are. esbuild was measured for the
// stripping too: it runs in a child process and took 0.5 ms a call (0.75 ms synchronously),
// and its output moves lines. Results are kept by source, as a notebook reruns the same cells.

import type * as TS from 'typescript';

/** The result of {@link transformCell}. */
export interface TransformedCell {
  /** JavaScript to run with vm.Script in the namespace context. */
  readonly code: string;
  /** True when the script's completion value is a Promise of the cell's value (top-level await). */
  readonly isAsync: boolean;
}

type Ts = typeof TS;

let loadedTs: Ts | undefined;

/**
 * Loads `typescript` on first use: loading it is a large part of an engine's start, and most
 * engines never run a cell.
 */
function typescript(): Ts {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loadedTs ??= require('typescript') as Ts;
  return loadedTs;
}

/**
 * Turns one notebook cell of TypeScript into a script for the engine's namespace.
 *
 * Top-level declarations (`const`, `let`, `var`, `function`, `class`, `enum`, `namespace`,
 * `import`) become properties of the context's global object and may be declared again by later
 * cells. If the last top-level statement is an expression statement, the script evaluates to its
 * value, otherwise to `undefined`. A cell with top-level `await` runs in an async function, and
 * the script then evaluates to a Promise of that value (`isAsync`); other cells stay synchronous
 * so that `breakOnSigint` can interrupt them.
 *
 * @param source - The cell's TypeScript source.
 * @param filename - The name to use for the cell in error messages.
 * @returns The script and whether its completion value is a Promise.
 * @throws SyntaxError naming the line and column in `source` of the first syntax error. Type
 *   errors are not reported: cells are not type-checked.
 */
export function transformCell(source: string, filename = '<cell>'): TransformedCell {
  let cell = transformed.get(source);
  if (cell === undefined) {
    cell = transformAnew(source, filename);
    remember(source, cell);
  }
  return cell;
}

/** Cells transformed lately, by source, oldest first; bounded by `CACHE_CHARS` of source. */
const transformed = new Map<string, TransformedCell>();
let cachedChars = 0;
const CACHE_CHARS = 4 * 1024 * 1024;

function remember(source: string, cell: TransformedCell): void {
  if (source.length > CACHE_CHARS / 4) return;
  transformed.set(source, cell);
  cachedChars += source.length;
  for (const oldest of transformed.keys()) {
    if (cachedChars <= CACHE_CHARS) break;
    transformed.delete(oldest);
    cachedChars -= oldest.length;
  }
}

function transformAnew(source: string, filename: string): TransformedCell {
  const ts = typescript();
  const parsed = ts.createSourceFile('cell.ts', source, ts.ScriptTarget.ES2022, true);
  if (isPlainJavaScript(ts, parsed)) return rewriteScript(ts, source, new Set());
  const enumNames = new Set<string>();
  const output = ts.transpileModule(source, {
    // A fixed `.ts` name: the name decides how TypeScript parses the text.
    fileName: 'cell.ts',
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      // `preserve` keeps import statements as written (rewritten below) and turns
      // `import x = require('m')` into `const x = require('m')`.
      module: ts.ModuleKind.Preserve,
      // Imports used only by later cells must not be elided as unused.
      verbatimModuleSyntax: true,
      // Parses the cell as a module, so that top-level `await` is an await expression.
      moduleDetection: ts.ModuleDetectionKind.Force,
    },
    transformers: { before: [prepareCell(ts, enumNames)] },
  });
  const errors = (output.diagnostics ?? []).filter(
    (d) => d.file !== undefined && d.category === ts.DiagnosticCategory.Error,
  );
  if (errors.length > 0) throw syntaxError(ts, errors, filename);
  return rewriteScript(ts, output.outputText, enumNames);
}

/**
 * True when `file` parsed without errors and holds nothing but JavaScript that runs as it is
 * (ES2022): no type annotation, type parameter or argument, cast, non-null assertion, optional
 * or definite mark, TypeScript-only declaration or modifier, decorator or `using` declaration
 * (which `transpileModule` would turn into something else). Errs on the side of `false`.
 */
function isPlainJavaScript(ts: Ts, file: TS.SourceFile): boolean {
  // Not part of the declared API, so its absence sends every cell the full way.
  const errors = (file as { parseDiagnostics?: readonly TS.Diagnostic[] }).parseDiagnostics;
  if (errors === undefined || errors.length > 0) return false;
  const K = ts.SyntaxKind;
  const jsModifiers = new Set([K.ExportKeyword, K.DefaultKeyword, K.AsyncKeyword, K.StaticKeyword]);
  const typeScriptOnly = (node: TS.Node): boolean => {
    const n = node as {
      type?: unknown;
      typeParameters?: unknown;
      typeArguments?: unknown;
      modifiers?: readonly TS.ModifierLike[];
      exclamationToken?: unknown;
      isTypeOnly?: boolean;
    };
    if (n.type !== undefined || n.typeParameters !== undefined || n.typeArguments !== undefined) {
      return true;
    }
    if (n.exclamationToken !== undefined || n.isTypeOnly === true) return true;
    if (n.modifiers?.some((m) => !jsModifiers.has(m.kind))) return true;
    if (
      (ts.isParameter(node) || ts.isPropertyDeclaration(node) || ts.isMethodDeclaration(node)) &&
      node.questionToken !== undefined
    ) {
      return true;
    }
    if (ts.isParameter(node) && ts.isIdentifier(node.name) && node.name.text === 'this')
      return true;
    if (ts.isFunctionLike(node) && !ts.isArrowFunction(node) && !('body' in node && node.body)) {
      return true; // an overload or other signature without a body
    }
    if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.Using) !== 0) return true;
    if (ts.isHeritageClause(node) && node.token === K.ImplementsKeyword) return true;
    if (ts.isExportAssignment(node) && node.isExportEquals) return true;
    return (
      ts.isTypeNode(node) ||
      ts.isInterfaceDeclaration(node) ||
      ts.isTypeAliasDeclaration(node) ||
      ts.isEnumDeclaration(node) ||
      ts.isModuleDeclaration(node) ||
      ts.isImportEqualsDeclaration(node) ||
      ts.isNamespaceExportDeclaration(node) ||
      ts.isAsExpression(node) ||
      ts.isSatisfiesExpression(node) ||
      ts.isTypeAssertionExpression(node) ||
      ts.isNonNullExpression(node) ||
      ts.isDecorator(node) ||
      ts.isIndexSignatureDeclaration(node)
    );
  };
  const visit = (node: TS.Node): boolean =>
    typeScriptOnly(node) || (ts.forEachChild(node, visit) ?? false);
  return !(ts.forEachChild(file, visit) ?? false);
}

/**
 * A transformer run on the TypeScript syntax tree before types are stripped: it notes the names
 * of top-level enums (see {@link Rewriter.declarationsToExpression}) and turns `export = value`,
 * which would be emitted as `module.exports = value`, into the expression statement `value;`.
 */
function prepareCell(ts: Ts, enumNames: Set<string>): TS.TransformerFactory<TS.SourceFile> {
  return () => (file) => {
    let changed = false;
    const statements = file.statements.map((statement) => {
      if (ts.isEnumDeclaration(statement)) enumNames.add(statement.name.text);
      if (ts.isExportAssignment(statement) && statement.isExportEquals) {
        changed = true;
        const replacement = ts.factory.createExpressionStatement(statement.expression);
        return ts.setTextRange(ts.setOriginalNode(replacement, statement), statement);
      }
      return statement;
    });
    return changed ? ts.factory.updateSourceFile(file, statements) : file;
  };
}

/** Builds the SyntaxError for the first of the cell's syntax errors, with the offending line. */
function syntaxError(ts: Ts, errors: readonly TS.Diagnostic[], filename: string): SyntaxError {
  const [first] = errors;
  const file = first.file as TS.SourceFile;
  const start = first.start ?? 0;
  const { line, character } = file.getLineAndCharacterOfPosition(start);
  const lineStarts = file.getLineStarts();
  const lineText = file.text
    .slice(lineStarts[line], lineStarts[line + 1] ?? file.text.length)
    .replace(/[\r\n\u2028\u2029]+$/, '');
  // Keeps tabs in the caret's indentation so that it lines up under the offending column.
  const indent = lineText.slice(0, character).replace(/[^\t]/g, ' ');
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more syntax errors)` : '';
  const message = ts.flattenDiagnosticMessageText(first.messageText, '\n');
  return new SyntaxError(
    `${filename}:${line + 1}:${character + 1}: ${message}${more}\n    ${lineText}\n    ${indent}^`,
  );
}

/** One top-level statement of the script, after rewriting. */
interface Piece {
  /** The statement's new text, preceded by its leading comments. */
  readonly text: string;
  /** The comments and spaces before the statement. */
  readonly leading: string;
  /** Nothing is left of the statement but comments (e.g. `export { x }`). */
  readonly isEmpty?: boolean;
  /** A function declaration: kept at script top level so that it hoists. */
  readonly isFunction?: boolean;
  /** For a statement whose value is the cell's value if it comes last: the expression's text. */
  readonly value?: string;
}

/** A replacement of the text from `start` to `end` of the script. */
interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/** Rewrites the emitted JavaScript of a cell; see {@link transformCell}. */
function rewriteScript(ts: Ts, js: string, enumNames: ReadonlySet<string>): TransformedCell {
  // The appended `export {}` makes the parser read top-level `await` as in a module; it is a
  // statement that is dropped like any other `export {}`.
  const file = ts.createSourceFile(
    'cell.js',
    `${js}\nexport {};\n`,
    ts.ScriptTarget.ES2022,
    true,
    ts.ScriptKind.JS,
  );
  const statements = file.statements.filter((s) => s.getStart(file) < js.length);
  const isAsync = statements.some((s) => containsTopLevelAwait(ts, s));
  const rewriter = new Rewriter(ts, file, enumNames, isAsync);

  // Directives such as 'use strict' must stay first in the script.
  let prologueLength = 0;
  while (
    prologueLength < statements.length &&
    ts.isExpressionStatement(statements[prologueLength]) &&
    ts.isStringLiteral((statements[prologueLength] as TS.ExpressionStatement).expression)
  ) {
    prologueLength++;
  }
  const prologue = statements.slice(0, prologueLength).map((s) => rewriter.statement(s));
  const body = statements.slice(prologueLength).map((s) => rewriter.statement(s));
  const trailing = js.slice(statements.length > 0 ? statements[statements.length - 1].end : 0);
  const lastPiece = [...prologue, ...body].reverse().find((p) => !p.isEmpty);
  // On the first line, as is the async wrapper's start: a synchronous cell keeps its lines, and
  // an async one too unless it declares functions, so errors point at the user's line.
  const hoisted = rewriter.names.size > 0 ? `var ${[...rewriter.names].join(', ')}; ` : '';
  const join = (pieces: readonly Piece[]): string => pieces.map((p) => p.text).join('');

  if (!isAsync) {
    // The script's completion value is that of its last statement with a value, so the cell's
    // value needs no rewriting; a trailing `void 0` gives `undefined` when the last statement is
    // not an expression (e.g. `const x = 1`, rewritten to the assignment `x = 1`).
    const end = lastPiece?.value === undefined ? '\n;void 0;\n' : '\n';
    return { code: join(prologue) + hoisted + join(body) + trailing + end, isAsync };
  }
  const functions = body.filter((p) => p.isFunction);
  const others = body
    .filter((p) => !p.isFunction)
    .map((p) =>
      p === lastPiece && p.value !== undefined
        ? { text: `${p.leading}return (${p.value});`, leading: p.leading }
        : p,
    );
  const code =
    join(prologue) +
    hoisted +
    join(functions) +
    `;(async () => {${join(others)}${trailing}\n})();\n`;
  return { code, isAsync };
}

/** Whether `node` contains an `await` (or `for await`) that is not inside a function. */
function containsTopLevelAwait(ts: Ts, node: TS.Node): boolean {
  if (ts.isAwaitExpression(node)) return true;
  if (ts.isForOfStatement(node) && node.awaitModifier !== undefined) return true;
  if (ts.isFunctionLike(node) || ts.isPropertyDeclaration(node)) {
    // A computed member name is evaluated in the enclosing scope; the rest is not.
    const name = node.name;
    return name !== undefined && ts.isComputedPropertyName(name)
      ? containsTopLevelAwait(ts, name)
      : false;
  }
  if (ts.isClassStaticBlockDeclaration(node)) return false;
  return ts.forEachChild(node, (child) => containsTopLevelAwait(ts, child) || undefined) ?? false;
}

/** Rewrites top-level statements one by one, collecting the names to hoist as `var`. */
class Rewriter {
  /** Names declared at top level (in order), other than those of function declarations. */
  readonly names = new Set<string>();

  constructor(
    private readonly ts: Ts,
    private readonly file: TS.SourceFile,
    private readonly enumNames: ReadonlySet<string>,
    private readonly isAsync: boolean,
  ) {}

  /** The rewritten text of one top-level statement, with its leading comments. */
  statement(node: TS.Statement): Piece {
    const ts = this.ts;
    const leading = this.file.text.slice(node.getFullStart(), node.getStart(this.file));
    const piece = (text: string, value?: string): Piece => ({
      text: leading + text,
      leading,
      isEmpty: text === '',
      value,
    });

    if (ts.isVariableStatement(node)) {
      const expression = this.declarationsToExpression(node.declarationList);
      return piece(expression === undefined ? '' : `${expression};`);
    }
    if (ts.isFunctionDeclaration(node)) {
      const text = this.withoutExportModifiers(node);
      if (node.name === undefined) return piece(`(${text});`, text); // export default function
      return { text: leading + text, leading, isFunction: true };
    }
    if (ts.isClassDeclaration(node)) {
      const text = this.withoutExportModifiers(node);
      if (node.name === undefined) return piece(`(${text});`, text); // export default class
      this.names.add(node.name.text);
      return piece(`${node.name.text} = ${text};`);
    }
    if (ts.isImportDeclaration(node)) return piece(this.importToRequire(node));
    if (ts.isExportDeclaration(node)) {
      // `export` means nothing in a namespace; a re-export still loads its module.
      const specifier = node.moduleSpecifier;
      return piece(specifier === undefined ? '' : `require(${this.text(specifier)});`);
    }
    if (ts.isExportAssignment(node)) {
      const value = this.text(node.expression);
      return piece(`(${value});`, value);
    }
    // Ended by a semicolon, so that a statement that follows, rewritten to begin with `(`, or
    // one that is dropped, does not join it (`f()\n({ a } = b)`); one was left out only in
    // a cell that was not compiled.
    const text = this.withNestedVarsRewritten(node).replace(/(?<!;)$/, ';');
    return ts.isExpressionStatement(node) ? piece(text, this.text(node.expression)) : piece(text);
  }

  /** The source text of a node, without leading comments. */
  private text(node: TS.Node): string {
    return this.file.text.slice(node.getStart(this.file), node.end);
  }

  /** The text of `node` with `edits` applied; edits are sorted and do not overlap. */
  private splice(node: TS.Node, edits: readonly Edit[]): string {
    let text = '';
    let position = node.getStart(this.file);
    for (const edit of edits) {
      text += this.file.text.slice(position, edit.start) + edit.text;
      position = edit.end;
    }
    return text + this.file.text.slice(position, node.end);
  }

  /** The text of a declaration without its `export` and `default` keywords. */
  private withoutExportModifiers(node: TS.FunctionDeclaration | TS.ClassDeclaration): string {
    const ts = this.ts;
    const edits = (node.modifiers ?? [])
      .filter(
        (m) => m.kind === ts.SyntaxKind.ExportKeyword || m.kind === ts.SyntaxKind.DefaultKeyword,
      )
      .map((m) => ({ start: m.getStart(this.file), end: this.skipSpaces(m.end), text: '' }));
    return this.splice(node, edits);
  }

  private skipSpaces(position: number): number {
    while (/\s/.test(this.file.text.charAt(position))) position++;
    return position;
  }

  /**
   * Declarations as assignments to the hoisted names (`a = 1, ({ b } = c)`), or `undefined` when
   * nothing is assigned. `let x;` and `const x;` reset `x`, as does the `var E;` that TypeScript
   * emits for an enum, so that an enum declared again does not merge with the earlier one; a plain
   * `var x;` keeps the value, as `var` does.
   */
  private declarationsToExpression(list: TS.VariableDeclarationList): string | undefined {
    const ts = this.ts;
    const isVar = (list.flags & ts.NodeFlags.BlockScoped) === 0;
    const assignments: string[] = [];
    for (const declaration of list.declarations) {
      this.addNames(declaration.name);
      const name = this.text(declaration.name);
      if (declaration.initializer !== undefined) {
        const assignment = `${name} = ${this.text(declaration.initializer)}`;
        // An object pattern at the start of a statement would be read as a block.
        assignments.push(ts.isIdentifier(declaration.name) ? assignment : `(${assignment})`);
      } else if (ts.isIdentifier(declaration.name) && (!isVar || this.enumNames.has(name))) {
        assignments.push(`${name} = undefined`);
      }
    }
    return assignments.length > 0 ? assignments.join(', ') : undefined;
  }

  private addNames(name: TS.BindingName): void {
    if (this.ts.isIdentifier(name)) {
      this.names.add(name.text);
      return;
    }
    for (const element of name.elements) {
      if (this.ts.isBindingElement(element)) this.addNames(element.name);
    }
  }

  /**
   * `import` as `require`, with the bindings assigned to the hoisted names. A default import is
   * `module.default` for a transpiled ES module (`__esModule`) and the whole CommonJS module
   * otherwise, as in Node's ES module interop.
   */
  private importToRequire(node: TS.ImportDeclaration): string {
    const ts = this.ts;
    const load = `require(${this.text(node.moduleSpecifier)})`;
    const clause = node.importClause;
    const bindings: [local: string, imported: string | undefined][] = [];
    if (clause?.name !== undefined) bindings.push([clause.name.text, 'default']);
    const named = clause?.namedBindings;
    if (named !== undefined && ts.isNamespaceImport(named))
      bindings.push([named.name.text, undefined]);
    if (named !== undefined && ts.isNamedImports(named)) {
      for (const element of named.elements) {
        bindings.push([element.name.text, (element.propertyName ?? element.name).text]);
      }
    }
    if (bindings.length === 0) return `${load};`;

    let mod = '__mod';
    while (bindings.some(([local]) => local === mod)) mod = `_${mod}`;
    const assignments = bindings.map(([local, imported]) => {
      this.names.add(local);
      if (imported === undefined) return `${local} = ${mod};`;
      if (imported === 'default') {
        return `${local} = ${mod} && ${mod}.__esModule ? ${mod}.default : ${mod};`;
      }
      const property = /^[A-Za-z_$][\w$]*$/.test(imported)
        ? `.${imported}`
        : `[${JSON.stringify(imported)}]`;
      return `${local} = ${mod}${property};`;
    });
    // An arrow function keeps the module in a parameter rather than a global.
    return `((${mod}) => { ${assignments.join(' ')} })(${load});`;
  }

  /**
   * In an async cell the statements run inside a function, where a `var` in a nested block or
   * loop head (`for (var i = 0; ...)`) would be local: such declarations become assignments to
   * hoisted names. A synchronous cell runs at script top level, where they are global already.
   */
  private withNestedVarsRewritten(statement: TS.Statement): string {
    if (!this.isAsync) return this.text(statement);
    const ts = this.ts;
    const edits: Edit[] = [];
    const visit = (node: TS.Node): void => {
      if (ts.isFunctionLike(node) || ts.isClassLike(node)) return;
      if (ts.isVariableDeclarationList(node) && (node.flags & ts.NodeFlags.BlockScoped) === 0) {
        const start = node.getStart(this.file);
        const parent = node.parent;
        if (ts.isForInStatement(parent) || ts.isForOfStatement(parent)) {
          this.addNames(node.declarations[0].name);
          edits.push({ start, end: node.end, text: this.text(node.declarations[0].name) });
        } else if (ts.isForStatement(parent)) {
          edits.push({ start, end: node.end, text: this.declarationsToExpression(node) ?? '' });
        } else {
          const expression = this.declarationsToExpression(node);
          // The whole statement, so that `if (c) var x;` stays a statement: `if (c) ;`.
          const end = parent.end;
          edits.push({ start: parent.getStart(this.file), end, text: `${expression ?? ''};` });
          // The initializers may not contain declarations outside functions: nothing to visit.
          return;
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(statement);
    return this.splice(statement, edits);
  }
}
