// The API of Spin's @spinframework/spin-kv and @spinframework/spin-variables packages, over the
// fermyon:spin@2.0.0 imports declared in wit/spin.wit, so the template needs no more than Spin's
// build tools (those two packages could not be installed from the npm registry Kiln is tested with).
import * as kv from 'fermyon:spin/key-value@2.0.0';
import * as vars from 'fermyon:spin/variables@2.0.0';

const encoder = new TextEncoder();

function wrap(store) {
  return {
    get: (key) => store.get(key) ?? null,
    set: (key, value) =>
      store.set(key, value instanceof Uint8Array ? value
        : encoder.encode(typeof value === 'string' ? value : JSON.stringify(value))),
    delete: (key) => store.delete(key),
    exists: (key) => store.exists(key),
    getKeys: () => store.getKeys(),
  };
}

export const Kv = {
  open: (label) => wrap(kv.Store.open(label)),
  openDefault: () => wrap(kv.Store.open('default')),
};

export const Variables = {
  // Like spin-variables: null when the variable is undefined.
  get(name) {
    try { return vars.get(name); } catch { return null; }
  },
};
