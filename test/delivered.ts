import type { Frame } from '../protocol/session';

/** Frames as a socket hands them to the receiver: each a Buffer, the binary ones the same. */
export function delivered(frames: Frame[]): Buffer[] {
  return frames.map((f) => (typeof f === 'string' ? Buffer.from(f) : f));
}
