#!/usr/bin/env node
// Thrudoc conformance driver for Node.js: runs a conformance script (JSON, see
// tests/interop/README.md) against a server with the bindings `thrift --gen js:node` made
// and the npm package thrift (pinned in package.json to the compiler's version).
//
//     node tests/interop/node/conformance.js --gen DIR --host H --port P --script FILE
//         [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
//
// With --tls-ca the client speaks TLS (createSSLConnection), checking the server's certificate
// against that CA; --tls-cert and --tls-key present a client certificate (mutual TLS).
//
// Prints `ok|FAIL <transport>/<protocol> <check>[: why]` per check and pair, then
// `N passed, M failed`. Exit status: 0 all passed, 1 a check failed, 2 setup error.
'use strict';

const fs = require('fs');
const path = require('path');
const Module = require('module');

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_WALK_PAGES = 100000;
const TIMEOUT_MS = 30000;

function setupError(message) {
  process.stderr.write(`conformance.js: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!['gen', 'host', 'port', 'script', 'tls-ca', 'tls-cert', 'tls-key'].includes(name) ||
      i + 1 >= argv.length) {
      setupError(`bad argument ${argv[i]}; usage: conformance.js --gen DIR --host H ` +
        '--port P --script FILE [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]');
    }
    args[name] = argv[i + 1];
  }
  for (const name of ['gen', 'port', 'script']) {
    if (!(name in args)) setupError(`--${name} is required`);
  }
  args.host = args.host || '127.0.0.1';
  return args;
}

// The generated files live in DIR (a temporary directory) and `require('thrift')` from there,
// where Node's lookup (DIR/node_modules and its parents) never reaches this driver's
// node_modules. NODE_PATH is Node's documented "search here too" list; it is read once at
// startup, so after setting it we re-read it with Module._initPaths() (what Node runs at
// startup; long-standing though not public). Because that is not public, and because a
// node_modules above DIR would be searched first, we then verify that the generated code
// resolves `thrift` to the very file this driver loaded, and refuse to run otherwise: the
// check must never run against some other copy or version of the library.
function loadLibraryAndBindings(genDir) {
  let thriftMain;
  try {
    thriftMain = require.resolve('thrift', { paths: [__dirname] });
  } catch (e) {
    setupError('the npm package thrift is missing; install it with: ' +
      '(cd tests/interop/node && npm ci)');
  }
  const ours = path.join(__dirname, 'node_modules');
  process.env.NODE_PATH = [ours, process.env.NODE_PATH].filter(Boolean).join(path.delimiter);
  if (typeof Module._initPaths === 'function') Module._initPaths();
  const service = path.resolve(genDir, 'Thrudoc.js');
  if (!fs.existsSync(service)) {
    setupError(`no bindings in ${genDir} (no Thrudoc.js); make them with: thrift --gen ` +
      `js:node -out ${genDir} tests/interop/original.thrift`);
  }
  let theirs;
  try {
    theirs = Module.createRequire(service).resolve('thrift');
  } catch (e) {
    theirs = `nothing (${e.message.split('\n')[0]})`;
  }
  if (theirs !== thriftMain) {
    setupError(`the bindings in ${genDir} would load thrift from ${theirs}, not ${thriftMain}`);
  }
  const thrift = require(thriftMain);
  let Thrudoc, types;
  try {
    Thrudoc = require(service);
    // Thrudoc.js requires its types module (named after the IDL file: original_types.js,
    // thrudoc_types.js); the require cache hands us the same classes it uses.
    for (const file of fs.readdirSync(genDir).filter((f) => f.endsWith('_types.js'))) {
      const m = require(path.resolve(genDir, file));
      if (m.ThrudocException) types = m;
    }
  } catch (e) {
    setupError(`cannot load the bindings in ${genDir}: ${e.message}`);
  }
  if (!types) setupError(`no *_types.js in ${genDir} defines ThrudocException`);
  return { thrift, Thrudoc, types };
}

class Failed extends Error {}

function expect(condition, message) {
  if (!condition) throw new Failed(message);
}

// JSON text cut short, so that a 2 MiB value does not flood the report.
function short(value, limit = 60) {
  if (Buffer.isBuffer(value)) {
    return `<${value.length} bytes: ${short(value.toString('utf8'), limit)}>`;
  }
  const text = value === undefined ? 'undefined' : JSON.stringify(value);
  return text.length <= limit ? text : `${text.slice(0, limit)}...(${text.length} chars)`;
}

// Values compare as bytes: `string` fields come back as text, `binary` ones (the project
// IDL's) as Buffers, which equal a script value when they hold its UTF-8 bytes.
function same(got, want) {
  return Buffer.isBuffer(got) ? got.equals(Buffer.from(want, 'utf8')) : got === want;
}

function describe(err) {
  if (err instanceof Failed) return err.message;
  if (err instanceof Error) return `unexpected ${err.name}: ${err.message}`;
  return `unexpected rejection ${short(err)}`; // the bindings reject some failures with a string
}

// One connection, whose calls fail (rather than hang or crash the process) when the
// connection errs, closes or does not answer within TIMEOUT_MS. node thrift reports a broken
// connection or an undecodable reply only as an 'error' event: it never rejects the pending
// call, so each call races against those events.
class Connection {
  constructor(lib, host, port, transport, protocol, tls) {
    this.broken = null;
    this.waiters = new Set();
    if (tls) {
      // TLS: the server's certificate is checked against the CA; a client certificate is
      // shown when given (mutual TLS).
      this.conn = lib.thrift.createSSLConnection(host, port, { transport, protocol, ...tls });
    } else {
      this.conn = lib.thrift.createConnection(host, port, { transport, protocol });
    }
    this.conn.on('error', (e) => this.fail(`connection error: ${e.message || e}`));
    this.conn.on('close', () => this.fail('the server closed the connection'));
    this.client = lib.thrift.createClient(lib.Thrudoc, this.conn);
  }

  fail(why) {
    if (!this.broken) this.broken = new Failed(why);
    for (const waiter of this.waiters) waiter(this.broken);
  }

  call(method, ...args) {
    if (this.broken) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.waiters.delete(done);
        if (err !== null) reject(err); else resolve(value);
      };
      const timer = setTimeout(() => done(new Failed(`${method}() got no answer within ` +
        `${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
      this.waiters.add(done);
      try {
        this.client[method](...args).then((v) => done(null, v), (e) => done(e));
      } catch (e) { // a write that throws, such as an argument the protocol cannot encode
        done(e);
      }
    });
  }

  close() {
    this.conn.destroy();
  }
}

// What each method takes and which success expectations it has.
const METHODS = {
  getBuckets: { args: 0, expects: ['contains'] },
  put: { args: 3, value: 2, expects: ['void'] },
  append: { args: 3, value: 2, expects: ['void'] },
  get: { args: 2, expects: ['value'] },
  remove: { args: 2, expects: ['void'] },
  putValue: { args: 2, value: 1, expects: ['new_key'] },
  scan: { args: 3, expects: [] },
  admin: { args: 2, expects: ['string'] },
  putList: { args: 1, batch: true, expects: ['results'] },
  getList: { args: 1, batch: true, expects: ['results'] },
  removeList: { args: 1, batch: true, expects: ['results'] },
  putValueList: { args: 1, batch: true, expects: ['results'] },
};

function formOf(want) {
  if (want === 'void' || want === 'ok') return want;
  return want !== null && typeof want === 'object' && Object.keys(want).length === 1
    ? Object.keys(want)[0] : short(want);
}

class Driver {
  constructor(lib, script) {
    this.lib = lib;
    this.bucket = script.bucket;
    this.newIdl = script.idl === 'new';
  }

  // A script value as these bindings carry it: text (they decode `string` as UTF-8).
  value(spec) {
    expect(spec !== null && typeof spec === 'object', `bad value ${short(spec)}`);
    const keys = Object.keys(spec).sort().join(',');
    if (keys === 'text' && typeof spec.text === 'string') return spec.text;
    if (keys === 'count,fill' && typeof spec.fill === 'string' &&
        Number.isInteger(spec.count) && spec.count >= 0) return spec.fill.repeat(spec.count);
    expect(keys !== 'hex', 'a hex value in a text script: node thrift decodes `string` ' +
      'fields as UTF-8, so raw bytes cannot round-trip');
    throw new Failed(`unknown value form ${short(spec)}`);
  }

  async runCheck(conn, check) {
    const keys = new Set(); // every key putValue/putValueList returned in this check
    for (const [index, step] of check.steps.entries()) {
      try {
        if (step.op === 'call') await this.call(conn, step, keys);
        else if (step.op === 'walk') await this.walk(conn, step);
        else throw new Failed(`unknown op ${short(step.op)}`);
      } catch (e) {
        let why = describe(e);
        if (e instanceof this.lib.types.ThrudocException) {
          why = `unexpected ThrudocException(type=${e.type}, code=${e.code}, ` +
            `what=${short(e.what)})`;
        }
        throw new Failed(`step ${index} (${step.method || step.op}): ${why}`);
      }
    }
  }

  // A value as sent: its UTF-8 bytes in a Buffer. A JS string would do for a `string` field,
  // but node thrift writes a string into a `binary` field (the project IDL's values) as
  // latin1, cutting every character above U+00FF to one byte; a Buffer goes out as is.
  wire(spec) {
    return Buffer.from(this.value(spec), 'utf8');
  }

  invoke(conn, method, args) {
    const spec = METHODS[method];
    expect(spec, `unknown method ${short(method)}`);
    expect(Array.isArray(args) && args.length === spec.args,
      `${method} takes ${spec.args} arguments, the script gives ${short(args)}`);
    if (spec.batch) {
      expect(Array.isArray(args[0]), `${method} takes a list of elements`);
      const elements = args[0].map((e) => new this.lib.types.Element(
        { bucket: e.bucket, key: e.key, value: this.wire(e.value) }));
      return conn.call(method, elements);
    }
    const values = args.map((a, i) => (i === spec.value ? this.wire(a) : a));
    return conn.call(method, ...values);
  }

  async call(conn, step, keys) {
    const { method, expect: want } = step;
    if (want && typeof want === 'object' && 'error' in want) {
      let result;
      try {
        result = await this.invoke(conn, method, step.args);
      } catch (e) {
        if (!(e instanceof this.lib.types.ThrudocException)) {
          throw new Failed(`${describe(e)}, expected ThrudocException ${short(want.error)}`);
        }
        this.checkError(e, want.error, 'the exception');
        let buckets;
        try {
          buckets = await conn.call('getBuckets');
        } catch (e2) {
          throw new Failed('after the error, getBuckets() on the same connection failed: ' +
            describe(e2));
        }
        expect(Array.isArray(buckets) && buckets.includes(this.bucket), 'after the error, ' +
          `getBuckets() on the same connection returned ${short(buckets)}`);
        return;
      }
      throw new Failed(`returned ${short(result)} instead of throwing ${short(want.error)}`);
    }
    const form = formOf(want);
    expect(METHODS[method] === undefined || METHODS[method].expects.includes(form),
      `unknown expectation ${short(want)} for ${method}`);
    const result = await this.invoke(conn, method, step.args);
    if (form === 'void') {
      expect(result === undefined || result === null,
        `returned ${short(result)}, expected nothing`);
    } else if (form === 'contains') {
      expect(Array.isArray(result) && result.includes(want.contains),
        `${short(want.contains)} is not in ${short(result, 200)}`);
    } else if (form === 'value') {
      const wanted = this.value(want.value);
      expect(same(result, wanted), `returned ${short(result)}, expected ${short(wanted)}`);
    } else if (form === 'string') {
      expect(result === want.string, `returned ${short(result)}, expected ${short(want.string)}`);
    } else if (form === 'new_key' && want.new_key === true) {
      await this.checkNewKey(conn, result, this.value(step.args[1]), keys);
    } else if (form === 'results') {
      await this.checkResults(conn, method, step.args[0], result, want.results, keys);
    } else {
      throw new Failed(`unknown expectation ${short(want)}`);
    }
  }

  checkError(ex, want, what) {
    expect(ex !== null && ex !== undefined, `${what} is missing (null)`);
    expect(want && typeof want === 'object' && typeof want.what === 'string',
      `bad error expectation ${short(want)}`);
    const type = ex.type === null || ex.type === undefined ? 1 : ex.type;
    expect(typeof ex.what === 'string' && ex.what !== '', `${what} has an empty \`what\` ` +
      `(a success), expected the error ${short(want)}`);
    expect(type === (want.type === undefined ? 1 : want.type),
      `${what} has type ${type}, expected ${want.type} (what=${short(ex.what)})`);
    expect(ex.what.includes(want.what),
      `${what}: \`what\` ${short(ex.what)} does not name ${short(want.what)}`);
    if (this.newIdl) {
      expect(ex.code === want.code,
        `${what} has code ${ex.code}, expected ${want.code} (what=${short(ex.what)})`);
    }
  }

  checkSuccess(ex, what) {
    expect(ex !== null && ex !== undefined,
      `${what} is missing (null); a success is an exception with an empty \`what\``);
    expect(ex.what === '', `${what}: expected success, got what=${short(ex.what)}`);
    if (this.newIdl) {
      expect(ex.code === null || ex.code === undefined,
        `${what}: a success with code ${ex.code}`);
    }
  }

  async checkNewKey(conn, key, value, keys) {
    expect(typeof key === 'string' && UUID_RE.test(key), `key ${short(key)} is not a UUID`);
    expect(!keys.has(key), `key ${short(key)} was returned before`);
    keys.add(key);
    const got = await conn.call('get', this.bucket, key);
    expect(same(got, value),
      `get of new key ${short(key)} returned ${short(got)}, expected ${short(value)}`);
  }

  async checkResults(conn, method, elements, results, wanted, keys) {
    expect(Array.isArray(wanted) && wanted.length === elements.length,
      `the script expects ${short(wanted)} for ${elements.length} elements`);
    expect(Array.isArray(results) && results.length === elements.length,
      `${Array.isArray(results) ? results.length : short(results)} results for ` +
      `${elements.length} elements`);
    const single = method === 'putList' || method === 'removeList';
    for (const [i, want] of wanted.entries()) {
      const what = `result ${i}`;
      const result = results[i];
      if (!single) expect(result !== null && result !== undefined, `${what}: no ListResponse`);
      const ex = single ? result : result.ex;
      const element = single ? null : result.element;
      const form = formOf(want);
      // The one success form each batch method has ({"new_key": true} exactly).
      const success = single ? 'ok' : method === 'getList' ? 'value' : 'new_key';
      const known = form === success && (form !== 'new_key' || want.new_key === true);
      expect(form === 'error' || known,
        `${what}: unknown expectation ${short(want)} for ${method}`);
      if (form === 'error') {
        this.checkError(ex, want.error, what);
        continue;
      }
      this.checkSuccess(ex, what);
      if (form === 'value') {
        expect(element, `${what}: no element`);
        expect(element.key === elements[i].key, `${what}: the element is for key ` +
          `${short(element.key)}, not ${short(elements[i].key)}`);
        const value = this.value(want.value);
        expect(same(element.value, value),
          `${what}: value ${short(element.value)}, expected ${short(value)}`);
      } else if (form === 'new_key') {
        expect(element, `${what}: no element`);
        await this.checkNewKey(conn, element.key, this.value(elements[i].value), keys);
      }
    }
  }

  async walk(conn, step) {
    const { bucket, count, prefix } = step;
    expect(Number.isInteger(count) && count > 0 && typeof prefix === 'string' &&
      step.expect && typeof step.expect === 'object', `bad walk ${short(step)}`);
    const wanted = new Map(Object.entries(step.expect).map(([k, v]) => [k, this.value(v)]));
    const seen = new Set();
    const mine = new Map();
    let seed = '';
    for (let page = 1; ; page++) {
      expect(page <= MAX_WALK_PAGES, `the walk did not end within ${MAX_WALK_PAGES} pages`);
      const response = await conn.call('scan', bucket, seed, count);
      const elements = (response && response.elements) || [];
      expect(elements.length <= count,
        `page ${page} holds ${elements.length} elements, more than ${count}`);
      for (const e of elements) {
        expect(e.bucket === bucket, `page ${page}: element of bucket ${short(e.bucket)}`);
        expect(!seen.has(e.key), `page ${page}: key ${short(e.key)} seen twice`);
        seen.add(e.key);
        if (e.key.startsWith(prefix)) mine.set(e.key, e.value);
      }
      if (elements.length < count) break;
      expect(response.seed, `page ${page} is full but its seed is empty`);
      seed = response.seed;
    }
    const missed = [...wanted.keys()].filter((k) => !mine.has(k)).sort();
    const extra = [...mine.keys()].filter((k) => !wanted.has(k)).sort();
    expect(!missed.length, `the walk never saw ${missed.length} expected keys, ` +
      `e.g. ${short(missed.slice(0, 3), 200)}`);
    expect(!extra.length, `the walk saw ${extra.length} keys the script does not expect, ` +
      `e.g. ${short(extra.slice(0, 3), 200)}`);
    for (const [key, value] of wanted) {
      expect(mine.has(key) && same(mine.get(key), value),
        `key ${short(key)}: value ${short(mine.get(key))}, expected ${short(value)}`);
    }
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const tls = args['tls-ca'] ? {
    ca: fs.readFileSync(args['tls-ca']),
    ...(args['tls-cert'] ? { cert: fs.readFileSync(args['tls-cert']) } : {}),
    ...(args['tls-key'] ? { key: fs.readFileSync(args['tls-key']) } : {}),
    rejectUnauthorized: true,
  } : null;
  const lib = loadLibraryAndBindings(args.gen);
  let script;
  try {
    script = JSON.parse(fs.readFileSync(args.script, 'utf8'));
  } catch (e) {
    setupError(`cannot read the script: ${e.message}`);
  }
  if (!script || !Array.isArray(script.runs)) setupError('the script has no `runs`');
  if (script.values === 'bytes') {
    // The original IDL's values are `string`; node thrift reads every `string` with
    // Buffer.toString('utf8'), replacing bytes that are not UTF-8, so bytes cannot round-trip.
    setupError('`values: bytes` scripts cannot run here: node thrift decodes `string` ' +
      'fields as UTF-8 (lossily); use a `values: text` script');
  }
  if (script.values !== 'text') setupError(`unknown values ${short(script.values)}`);
  const { thrift } = lib;
  const transports = { framed: thrift.TFramedTransport, unframed: thrift.TBufferedTransport };
  // The connection builds its protocol with the transport alone, and TBinaryProtocol then
  // reads leniently (a reply without the version header passes); the script asks for strict.
  function StrictBinary(trans) {
    thrift.TBinaryProtocol.call(this, trans, true, true);
  }
  StrictBinary.prototype = Object.create(thrift.TBinaryProtocol.prototype);
  const protocols = { binary: StrictBinary, compact: thrift.TCompactProtocol };
  const driver = new Driver(lib, script);
  let passed = 0;
  let failed = 0;
  for (const run of script.runs) {
    const pair = `${run.transport}/${run.protocol}`;
    for (const check of run.checks) {
      let conn = null;
      let line;
      try {
        expect(transports[run.transport], `unknown transport ${short(run.transport)}`);
        expect(protocols[run.protocol], `unknown protocol ${short(run.protocol)}`);
        conn = new Connection(lib, args.host, Number(args.port),
          transports[run.transport], protocols[run.protocol], tls);
        await driver.runCheck(conn, check);
        line = `ok ${pair} ${check.name}`;
        passed++;
      } catch (e) {
        line = `FAIL ${pair} ${check.name}: ${describe(e)}`;
        failed++;
      } finally {
        if (conn) conn.close();
      }
      process.stdout.write(`${line}\n`);
    }
  }
  process.stdout.write(`${passed} passed, ${failed} failed\n`);
  // Exit now: stdout to a file or pipe is written synchronously on POSIX, and nothing else
  // must keep the process alive.
  process.exit(failed ? 1 : 0);
}

main().catch((e) => setupError(`internal error: ${e.stack || e}`));
