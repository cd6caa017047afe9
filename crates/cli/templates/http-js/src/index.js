// An HTTP component: a greeting from a variable, a visit counter and a small key-value API in the
// `default` store, and an outbound HTTP call.
import { Kv, Variables } from './spin.js';

const decoder = new TextDecoder();

async function handle(request) {
  const url = new URL(request.url);
  if (request.method === 'GET' && url.pathname === '/') return home();
  if (url.pathname.startsWith('/kv/')) return keyValue(request, url.pathname.slice(4));
  if (request.method === 'GET' && url.pathname === '/fetch') return fetchUrl(url.searchParams.get('url'));
  return new Response('not found\n', { status: 404 });
}

// The greeting (variable `greeting`) and how many times this page was seen.
function home() {
  const greeting = Variables.get('greeting');
  const store = Kv.openDefault();
  const seen = store.get('visits');
  const visits = (seen ? Number(decoder.decode(seen)) : 0) + 1;
  store.set('visits', String(visits));
  return new Response(`${greeting} from {{project-name}}! Visit number ${visits}.\n`);
}

// GET, PUT and DELETE one key of the `default` store.
async function keyValue(request, key) {
  if (!key) return new Response('the key is the rest of the path: /kv/KEY\n', { status: 400 });
  const store = Kv.openDefault();
  switch (request.method) {
    case 'GET': {
      const value = store.get(key);
      return value ? new Response(value) : new Response('no such key\n', { status: 404 });
    }
    case 'PUT':
      store.set(key, new Uint8Array(await request.arrayBuffer()));
      return new Response('stored\n');
    case 'DELETE':
      store.delete(key);
      return new Response('deleted\n');
    default:
      return new Response('use GET, PUT or DELETE\n', { status: 405 });
  }
}

// Fetches `?url=…` (its host must be in allowed_outbound_hosts) and answers with its status and body.
async function fetchUrl(target) {
  if (!target) return new Response('add ?url=…\n', { status: 400 });
  try {
    const response = await fetch(target);
    return new Response(`${response.status} ${await response.text()}`);
  } catch (e) {
    return new Response(`fetch ${target} failed: ${e.message}\n`, { status: 502 });
  }
}

addEventListener('fetch', (event) => event.respondWith(handle(event.request)));
