/** Keys seen lately, in two generations: bounded memory, O(1) per call, the oldest dropped in bulk. */
export class RecentKeys {
  private young = new Set<string>();
  private old = new Set<string>();
  constructor(private readonly size: number) {}

  has(key: string): boolean {
    return this.young.has(key) || this.old.has(key);
  }

  /** Forgets the key; true when it was there. */
  delete(key: string): boolean {
    const young = this.young.delete(key);
    return this.old.delete(key) || young;
  }

  add(key: string): void {
    if (this.young.size >= this.size) {
      this.old = this.young;
      this.young = new Set();
    }
    this.young.add(key);
  }
}
