/**
 * Type-level checks of actors: `Actor<T>` has the methods of `T`, each returning a promise of
 * the awaited result that other tasks and calls take where they take the result itself, and
 * `actor` checks the constructor's arguments. The `@ts-expect-error`
 * lines fail the build if a wrong call ever type-checks; there is nothing to run.
 */
import type { Actor, ActorCall } from '../../client/actor';
import type { AsyncMapResult, AsyncResult } from '../../client/async-result';
import type { DirectView, LoadBalancedView } from '../../client/views';
import { exactly } from './exactly';

class Counter {
  n = 0;
  private secret = 1;
  constructor(
    start: number,
    readonly label: string,
  ) {
    this.n = start + this.secret;
  }
  add(k: number): number {
    return (this.n += k);
  }
  async later(s: string): Promise<string[]> {
    return [s];
  }
  release(): string {
    return 'the class own release';
  }
}

// Never called: these functions exist for the compiler to check.
export async function actorTypes(lv: LoadBalancedView, dv: DirectView): Promise<void> {
  const counter = await lv.actor(Counter, 1, 'a');
  exactly<Actor<Counter>>()(counter);
  exactly<ActorCall<number>>()(counter.add(2));
  exactly<ActorCall<string[]>>()(counter.later('x'));
  const asPromise: Promise<number> = counter.add(2);
  exactly<number>()(await asPromise);
  exactly<number>()(counter.engineId);
  exactly<Promise<void>>()(counter.release());
  // @ts-expect-error add takes a number
  void counter.add('two');
  exactly<ActorCall<number>>()(counter.add(lv.apply(() => 2)));
  // @ts-expect-error a result of the wrong type
  void counter.add(lv.apply(() => 'two'));
  // A call's result is an argument where its value is.
  exactly<ActorCall<number>>()(counter.add(counter.add(1)));
  exactly<AsyncResult<number>>()(lv.apply((k: number) => k * 2, counter.add(1)));
  exactly<AsyncResult<number[]>>()(dv.apply((s: string[]) => s.length, counter.later('y')));
  exactly<AsyncMapResult<number>>()(
    lv.map((k: number) => k, [counter.add(1), 3, lv.apply(() => 4)]),
  );
  // @ts-expect-error a call of the wrong type
  void lv.apply((k: number) => k, counter.later('z'));
  // @ts-expect-error a plain promise is no task's result
  void lv.apply((k: number) => k, Promise.resolve(1));
  // @ts-expect-error a missing argument
  void counter.later();
  // @ts-expect-error fields are not methods
  void counter.n;
  // @ts-expect-error private members are not the actor's
  void counter.secret;
  // @ts-expect-error the constructor takes a number first
  void lv.actor(Counter, 'one', 'a');
  // @ts-expect-error a missing constructor argument
  void lv.actor(Counter, 1);
  exactly<Promise<Actor<Counter>[]>>()(dv.actor(Counter, 0, 'b'));
}
