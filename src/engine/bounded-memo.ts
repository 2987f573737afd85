// A map that holds at most `limit` entries, dropping the least recently used first: for derived
// data whose key is its input, so an entry dropped is only computed again.

export class BoundedMemo<K, V> {
  private entries: Map<K, V> | undefined; // made on first use: most memos of a generation stay empty

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`memo limit ${limit}`);
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  /** The value for `key`, computed by `compute` when not held (and then held). */
  get(key: K, compute: (key: K) => V): V {
    this.entries ??= new Map();
    const entries = this.entries;
    let value = entries.get(key);
    if (value !== undefined || entries.has(key)) {
      entries.delete(key); // re-inserted below as the most recently used
    } else {
      value = compute(key);
      if (entries.size >= this.limit) {
        const oldest = entries.keys().next();
        if (oldest.done !== true) entries.delete(oldest.value);
      }
    }
    entries.set(key, value as V);
    return value as V;
  }
}
