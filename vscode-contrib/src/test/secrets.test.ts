import * as assert from 'assert';
import { TrackedSecrets, INDEX_KEY } from '../secrets';

class Raw { m = new Map<string, string>(); async get(k: string) { return this.m.get(k); } async store(k: string, v: string) { this.m.set(k, v); } async delete(k: string) { this.m.delete(k); } }

describe('TrackedSecrets (SecretStorage with an index so Sign Out can clear it)', () => {
  it('indexes stored keys and clear() empties the store', async () => {
    const raw = new Raw(); const s = new TrackedSecrets(raw);
    await s.store('session:a@u', 'v1'); await s.store('password:a@u', 'v2'); await s.store('session:a@u', 'v3');
    assert.deepStrictEqual(await s.keys(), ['session:a@u', 'password:a@u']);
    assert.strictEqual(await s.get('session:a@u'), 'v3');
    await s.delete('password:a@u');
    assert.deepStrictEqual(await s.keys(), ['session:a@u']);
    assert.deepStrictEqual(await s.clear(), ['session:a@u']);
    assert.strictEqual(raw.m.size, 0);
    assert.strictEqual(raw.m.has(INDEX_KEY), false);
  });
});
