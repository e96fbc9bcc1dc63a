/**
 * A map that keeps its entries from least to most recently used: a lookup, a use and dropping the least recently
 * used are each O(1). (A Map kept in that order by deleting and re-inserting is not: finding its first entry
 * walks past every slot deleted since the Map was last rehashed, tens of µs per call with tens of thousands of
 * keys.)
 */
interface Node<V> {
  readonly key: string;
  value: V;
  older: Node<V> | undefined;
  newer: Node<V> | undefined;
}

export class LruMap<V> {
  readonly #byKey = new Map<string, Node<V>>();
  #oldest: Node<V> | undefined;
  #newest: Node<V> | undefined;

  get size(): number {
    return this.#byKey.size;
  }

  /** The value, without counting it as a use. */
  peek(key: string): V | undefined {
    return this.#byKey.get(key)?.value;
  }

  /** The value, now the most recently used. */
  use(key: string): V | undefined {
    const node = this.#byKey.get(key);
    if (node === undefined) return undefined;
    this.#toNewest(node);
    return node.value;
  }

  /** Set a value, now the most recently used. */
  set(key: string, value: V): void {
    const node = this.#byKey.get(key);
    if (node === undefined) {
      const added: Node<V> = { key, value, older: undefined, newer: undefined };
      this.#byKey.set(key, added);
      this.#append(added);
    } else {
      node.value = value;
      this.#toNewest(node);
    }
  }

  /** The least recently used entry, or undefined when empty. */
  oldest(): { readonly key: string; readonly value: V } | undefined {
    return this.#oldest;
  }

  /** Remove the least recently used entry; returns it. */
  dropOldest(): { readonly key: string; readonly value: V } | undefined {
    const node = this.#oldest;
    if (node === undefined) return undefined;
    this.#unlink(node);
    this.#byKey.delete(node.key);
    return node;
  }

  clear(): void {
    this.#byKey.clear();
    this.#oldest = undefined;
    this.#newest = undefined;
  }

  #toNewest(node: Node<V>): void {
    if (node === this.#newest) return;
    this.#unlink(node);
    this.#append(node);
  }

  #append(node: Node<V>): void {
    node.older = this.#newest;
    node.newer = undefined;
    if (this.#newest === undefined) this.#oldest = node;
    else this.#newest.newer = node;
    this.#newest = node;
  }

  #unlink(node: Node<V>): void {
    if (node.older === undefined) this.#oldest = node.newer;
    else node.older.newer = node.newer;
    if (node.newer === undefined) this.#newest = node.older;
    else node.newer.older = node.older;
    node.older = undefined;
    node.newer = undefined;
  }
}
