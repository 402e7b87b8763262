/**
 * The live engines a client knows, by id. What every task asks of them (the ids in order, the
 * shared memory they all see) is worked out once per change, not per task: with a thousand
 * engines, sorting them for each tiny task cost as much as sending it.
 */
import type { EngineInfo } from '../protocol/messages';

export class EngineTable extends Map<number, EngineInfo> {
  private derived: { ids: readonly number[]; host: string | undefined } | undefined;

  override set(id: number, engine: EngineInfo): this {
    this.derived = undefined;
    return super.set(id, engine);
  }

  override delete(id: number): boolean {
    this.derived = undefined;
    return super.delete(id);
  }

  override clear(): void {
    this.derived = undefined;
    super.clear();
  }

  /** The ids, ascending. */
  get ids(): readonly number[] {
    return this.derive().ids;
  }

  /** The shared memory all of `ids` (all engines by default) see, if they all see the same. */
  hostOf(ids?: readonly number[]): string | undefined {
    if (ids === undefined) return this.derive().host;
    const hosts = new Set(ids.map((id) => this.get(id)?.shared_memory));
    return hosts.size === 1 ? [...hosts][0] : undefined;
  }

  private derive(): { ids: readonly number[]; host: string | undefined } {
    if (this.derived) return this.derived;
    const ids = [...this.keys()].sort((a, b) => a - b);
    const hosts = new Set([...this.values()].map((e) => e.shared_memory));
    this.derived = { ids, host: hosts.size === 1 ? [...hosts][0] : undefined };
    return this.derived;
  }
}
