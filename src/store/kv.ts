/** The engine store's key-value table (`Store.getKv` / `setKv`), as the small records kept in it see it. */
export interface KvStore {
  getKv(key: string): string | undefined;
  /** An empty value is how a record is deleted (readers treat '' as absent). */
  setKv(key: string, value: string): void;
}
