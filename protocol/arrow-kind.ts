/**
 * Telling Arrow values apart without loading apache-arrow (loading it costs ~0.1 s, which a
 * process that never meets a table should not pay). Arrow marks its classes' prototypes with
 * registered symbols, so this also knows tables made by another copy of the library.
 */
import type { RecordBatch, Table } from 'apache-arrow';

/** What travels as an Arrow IPC stream: a whole table, or one record batch. */
export type ArrowKind = 'table' | 'batch';

const TABLE = Symbol.for('apache-arrow/Table');
const BATCH = Symbol.for('apache-arrow/RecordBatch');

/** `'table'` for an Arrow `Table`, `'batch'` for a `RecordBatch`, else undefined. */
export function arrowKind(o: object): ArrowKind | undefined {
  const marks = o as { [TABLE]?: unknown; [BATCH]?: unknown };
  return marks[TABLE] === true ? 'table' : marks[BATCH] === true ? 'batch' : undefined;
}

/** True for an Arrow `Table` of any copy of apache-arrow. */
export function isArrowTable(x: unknown): x is Table {
  return typeof x === 'object' && x !== null && arrowKind(x) === 'table';
}

/** True for an Arrow `RecordBatch` of any copy of apache-arrow. */
export function isArrowBatch(x: unknown): x is RecordBatch {
  return typeof x === 'object' && x !== null && arrowKind(x) === 'batch';
}
