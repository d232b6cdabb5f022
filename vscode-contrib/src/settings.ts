// FR-15 settings → the protocol's Settings object (keys without the `kflow.` prefix).
export const SERVER_SETTING_KEYS = ['url', 'verifySSL', 'keycloak.realm', 'defaultNamespace', 'defaultImage',
  'defaultPVCsize', 'autoPVCforPip', 'apiServer', 'backend'] as const;
export const ALL_SETTING_KEYS = [...SERVER_SETTING_KEYS, 'path'] as const;

export type Getter = (key: string) => unknown;

/** Empty strings and unset values become null ("not set": kflow's config file and defaults apply). */
export function settingsFromConfig(get: Getter): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of SERVER_SETTING_KEYS) {
    const v = get(k);
    out[k] = v === undefined || v === null || (typeof v === 'string' && v.trim() === '') ? null : (typeof v === 'string' ? v.trim() : v);
  }
  return out;
}

/** Does a configuration change concern the server (settings/update) or how kflow is found (restart)? */
export function classifyChange(affects: (section: string) => boolean): { update: boolean; restart: boolean } {
  return {
    update: SERVER_SETTING_KEYS.some((k) => affects(`kflow.${k}`)),
    restart: affects('kflow.path'),
  };
}
