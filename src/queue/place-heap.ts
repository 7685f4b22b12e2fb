/**
 * A binary min-heap by place that can also remove any member in O(log n): each member carries
 * its own index, so a stream that goes away leaves the heap at once instead of lingering until
 * the watermark reaches it.
 */
export interface HeapMember {
  place: number;
  /** Position in the heap; -1 when not in it. Owned by the heap. */
  heapIndex: number;
}

export class PlaceHeap<T extends HeapMember> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    if (item.heapIndex >= 0) return;
    item.heapIndex = this.items.length;
    this.items.push(item);
    this.up(item.heapIndex);
  }

  pop(): T | undefined {
    const top = this.items[0];
    if (top) this.remove(top);
    return top;
  }

  /** Takes `item` out wherever it is; a no-op when it is not in the heap. */
  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0 || this.items[i] !== item) return;
    const last = this.items.pop()!;
    item.heapIndex = -1;
    if (last === item) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.down(i);
    this.up(last.heapIndex);
  }

  private up(i: number): void {
    const a = this.items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent].place <= a[i].place) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const a = this.items;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && a[l].place < a[m].place) m = l;
      if (r < a.length && a[r].place < a[m].place) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(i: number, j: number): void {
    const a = this.items;
    [a[i], a[j]] = [a[j], a[i]];
    a[i].heapIndex = i;
    a[j].heapIndex = j;
  }
}
