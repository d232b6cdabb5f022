// A SecretStore that remembers which keys it holds (an index kept in the same store), so Sign Out
// can clear every kflow key: SecretStorage has no listing in VS Code 1.90.
import { SecretStore } from './rpc';

export const INDEX_KEY = 'kflow:keys';

export interface RawSecrets { get(key: string): Thenable<string | undefined>; store(key: string, value: string): Thenable<void>; delete(key: string): Thenable<void> }

export class TrackedSecrets implements SecretStore {
  constructor(private raw: RawSecrets) {}
  async keys(): Promise<string[]> {
    const v = await this.raw.get(INDEX_KEY);
    try { return v ? JSON.parse(v) : []; } catch { return []; }
  }
  private async setKeys(keys: string[]) {
    if (keys.length) { await this.raw.store(INDEX_KEY, JSON.stringify(keys)); } else { await this.raw.delete(INDEX_KEY); }
  }
  async get(key: string) { return this.raw.get(key); }
  async store(key: string, value: string) {
    await this.raw.store(key, value);
    const k = await this.keys(); if (!k.includes(key)) { k.push(key); await this.setKeys(k); }
  }
  async delete(key: string) {
    await this.raw.delete(key);
    const k = await this.keys(); if (k.includes(key)) { await this.setKeys(k.filter((x) => x !== key)); }
  }
  /** delete every key kflow ever stored, and the index */
  async clear(): Promise<string[]> {
    const k = await this.keys();
    for (const key of k) { await this.raw.delete(key); }
    await this.raw.delete(INDEX_KEY);
    return k;
  }
}
