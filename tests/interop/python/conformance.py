#!/usr/bin/env python3
"""Thrudoc conformance driver for Python: runs a conformance script (JSON, see
tests/interop/README.md) against a server with bindings the Thrift compiler
generated, and the Apache Thrift Python library's pure-Python protocols.

    conformance.py --gen DIR [--module PKG] --host H --port P --script FILE
                   [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]

With --tls-ca the client speaks TLS (TSSLSocket), verifying the server's
certificate against that CA; --tls-cert/--tls-key present a client
certificate (mutual TLS).

Prints `ok|FAIL <transport>/<protocol> <check>[: why]` per check and pair,
then `N passed, M failed`. Exit status: 0 all passed, 1 a check failed,
2 setup error.
"""

import argparse
import importlib
import json
import logging
import os
import re
import sys

try:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.transport import TSocket, TSSLSocket, TTransport
except ImportError:
    print("conformance.py: the Apache Thrift Python library is missing; "
          "install it with: python3 -m pip install -r %s" % os.path.join(
              os.path.dirname(os.path.abspath(__file__)), "requirements.txt"),
          file=sys.stderr)
    sys.exit(2)

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
MAX_WALK_PAGES = 100000
TIMEOUT_SECONDS = 30

# Filled in by load_bindings().
Thrudoc = None
ttypes = None


class Failed(Exception):
    """An expectation of the script did not hold; the message says which."""


def expect(condition, message):
    if not condition:
        raise Failed(message)


def short(value, limit=60):
    """repr() cut short, so that a 2 MiB value does not flood the report."""
    text = repr(value)
    return text if len(text) <= limit else "%s...(%d chars)" % (
        text[:limit], len(text))


class Driver:
    def __init__(self, script, host, port, tls=None):
        self.tls = tls
        self.bucket = script["bucket"]
        self.new_idl = script["idl"] == "new"
        self.bytes_values = script["values"] == "bytes"
        self.host = host
        self.port = port

    # --- values ---------------------------------------------------------

    def value(self, spec):
        """A script value as these bindings carry it: bytes for `binary`
        fields (and `string` ones, which the library writes from bytes
        too), text where the bindings decode `string` as UTF-8."""
        expect(isinstance(spec, dict) and len(spec) in (1, 2),
               "bad value %s" % short(spec))
        if "text" in spec:
            text = spec["text"]
        elif "fill" in spec:
            text = spec["fill"] * spec["count"]
        elif "hex" in spec:
            expect(self.bytes_values, "a hex value in a text script")
            return bytes.fromhex(spec["hex"])
        else:
            raise Failed("unknown value form %s" % short(spec))
        return text.encode() if self.bytes_values else text

    def same(self, got, want):
        """Values compare as bytes; text bindings compare text (the same)."""
        return got == want

    # --- connection -----------------------------------------------------

    def connect(self, transport, protocol):
        if self.tls and self.tls.tls_ca:
            import ssl
            socket = TSSLSocket.TSSLSocket(
                self.host, self.port, cert_reqs=ssl.CERT_REQUIRED,
                ca_certs=self.tls.tls_ca, certfile=self.tls.tls_cert,
                keyfile=self.tls.tls_key)
        else:
            socket = TSocket.TSocket(self.host, self.port)
        socket.setTimeout(TIMEOUT_SECONDS * 1000)
        if transport == "framed":
            trans = TTransport.TFramedTransport(socket)
        elif transport == "unframed":
            trans = TTransport.TBufferedTransport(socket)
        else:
            raise Failed("unknown transport %r" % transport)
        # Pure-Python protocols: the accelerated ones are an optional C
        # extension, and the check must not depend on how thrift was built.
        if protocol == "binary":
            proto = TBinaryProtocol.TBinaryProtocol(
                trans, strictRead=True, strictWrite=True)
        elif protocol == "compact":
            proto = TCompactProtocol.TCompactProtocol(trans)
        else:
            raise Failed("unknown protocol %r" % protocol)
        trans.open()
        return Thrudoc.Client(proto), trans

    # --- one check ------------------------------------------------------

    def run_check(self, client, check):
        keys = set()  # every key putValue/putValueList returned in this check
        for index, step in enumerate(check["steps"]):
            where = "step %d (%s)" % (index, step.get("method", step.get("op")))
            try:
                if step.get("op") == "call":
                    self.call(client, step, keys)
                elif step.get("op") == "walk":
                    self.walk(client, step)
                else:
                    raise Failed("unknown op %r" % step.get("op"))
            except Failed as e:
                raise Failed("%s: %s" % (where, e))
            except ttypes.ThrudocException as e:
                raise Failed("%s: unexpected ThrudocException(type=%r, code=%r, "
                             "what=%r)" % (where, e.type, getattr(e, "code", None),
                                           e.what))
            except Exception as e:  # transport or application errors
                raise Failed("%s: unexpected %s: %s" % (
                    where, type(e).__name__, getattr(e, "message", None) or e))

    def invoke(self, client, method, args):
        if method == "getBuckets":
            return client.getBuckets()
        if method in ("put", "append"):
            bucket, key, value = args
            return getattr(client, method)(bucket, key, self.value(value))
        if method in ("get", "remove"):
            bucket, key = args
            return getattr(client, method)(bucket, key)
        if method == "putValue":
            bucket, value = args
            return client.putValue(bucket, self.value(value))
        if method == "scan":
            bucket, seed, count = args
            return client.scan(bucket, seed, count)
        if method == "admin":
            op, data = args
            return client.admin(op, data)
        if method in ("putList", "getList", "removeList", "putValueList"):
            (elements,) = args
            return getattr(client, method)([ttypes.Element(
                bucket=e["bucket"], key=e["key"], value=self.value(e["value"]))
                for e in elements])
        raise Failed("unknown method %r" % method)

    def call(self, client, step, keys):
        method, want = step["method"], step["expect"]
        if isinstance(want, dict) and "error" in want:
            try:
                result = self.invoke(client, method, step["args"])
            except ttypes.ThrudocException as e:
                self.check_error(e, want["error"], "the exception")
                buckets = client.getBuckets()
                expect(self.bucket in (buckets or []),
                       "after the error, getBuckets() on the same connection "
                       "returned %r" % (buckets,))
                return
            raise Failed("returned %s instead of throwing %s" % (
                short(result), want["error"]))
        result = self.invoke(client, method, step["args"])
        if want == "void":
            expect(result is None, "returned %s, expected nothing" % short(result))
        elif "contains" in want:
            expect(want["contains"] in (result or []),
                   "%r is not in %r" % (want["contains"], result))
        elif "value" in want:
            wanted = self.value(want["value"])
            expect(self.same(result, wanted), "returned %s, expected %s" % (
                short(result), short(wanted)))
        elif "string" in want:
            expect(result == want["string"], "returned %r, expected %r" % (
                result, want["string"]))
        elif "new_key" in want:
            self.check_new_key(client, result, self.value(step["args"][1]), keys)
        elif "results" in want:
            self.check_results(client, method, step["args"][0], result,
                               want["results"], keys)
        else:
            raise Failed("unknown expectation %s" % short(want))

    def check_error(self, ex, want, what):
        expect(ex is not None, "%s is missing (null)" % what)
        got_type = ex.type if ex.type is not None else 1
        expect(ex.what, "%s has an empty `what`" % what)
        expect(got_type == want["type"], "%s has type %r, expected %r (what=%r)"
               % (what, got_type, want["type"], ex.what))
        expect(want["what"] in ex.what, "%s: `what` %r does not name %r" % (
            what, ex.what, want["what"]))
        if self.new_idl:
            code = getattr(ex, "code", None)
            expect(code == want["code"], "%s has code %r, expected %r (what=%r)"
                   % (what, code, want["code"], ex.what))

    def check_success(self, ex, what):
        expect(ex is not None, "%s is missing (null); a success is an "
               "exception with an empty `what`" % what)
        expect(ex.what == "", "%s: expected success, got what=%r" % (
            what, ex.what))
        if self.new_idl:
            expect(getattr(ex, "code", None) is None,
                   "%s: a success with code %r" % (what, ex.code))

    def check_new_key(self, client, key, value, keys):
        expect(isinstance(key, str) and UUID_RE.match(key),
               "key %r is not a UUID" % (key,))
        expect(key not in keys, "key %r was returned before" % key)
        keys.add(key)
        got = client.get(self.bucket, key)
        expect(self.same(got, value), "get of new key %r returned %s, "
               "expected %s" % (key, short(got), short(value)))

    def check_results(self, client, method, elements, results, wanted, keys):
        expect(results is not None and len(results) == len(elements),
               "%s results for %d elements" % (
                   None if results is None else len(results), len(elements)))
        for i, (asked, result, want) in enumerate(zip(elements, results, wanted)):
            what = "result %d" % i
            if method in ("putList", "removeList"):
                ex, element = result, None
            else:
                expect(result is not None, "%s: no ListResponse" % what)
                ex, element = result.ex, result.element
            if isinstance(want, dict) and "error" in want:
                self.check_error(ex, want["error"], what)
                continue
            self.check_success(ex, what)
            if want == "ok":
                expect(method in ("putList", "removeList"),
                       "%s: \"ok\" expected of %s" % (what, method))
            elif isinstance(want, dict) and "value" in want:
                expect(element is not None, "%s: no element" % what)
                expect(element.key == asked["key"], "%s: the element is for "
                       "key %r, not %r" % (what, element.key, asked["key"]))
                value = self.value(want["value"])
                expect(self.same(element.value, value), "%s: value %s, "
                       "expected %s" % (what, short(element.value), short(value)))
            elif isinstance(want, dict) and "new_key" in want:
                expect(element is not None, "%s: no element" % what)
                self.check_new_key(client, element.key,
                                   self.value(asked["value"]), keys)
            else:
                raise Failed("%s: unknown expectation %s" % (what, short(want)))

    def walk(self, client, step):
        bucket, count, prefix = step["bucket"], step["count"], step["prefix"]
        wanted = {k: self.value(v) for k, v in step["expect"].items()}
        seen, mine, seed = set(), {}, ""
        for page in range(1, MAX_WALK_PAGES + 1):
            response = client.scan(bucket, seed, count)
            elements = response.elements or []
            expect(len(elements) <= count, "page %d holds %d elements, more "
                   "than %d" % (page, len(elements), count))
            for e in elements:
                expect(e.bucket == bucket, "page %d: element of bucket %r" % (
                    page, e.bucket))
                expect(e.key not in seen, "page %d: key %r seen twice" % (
                    page, e.key))
                seen.add(e.key)
                if e.key.startswith(prefix):
                    mine[e.key] = e.value
            if len(elements) < count:
                break
            expect(response.seed, "page %d is full but its seed is empty" % page)
            seed = response.seed
        else:
            raise Failed("the walk did not end within %d pages" % MAX_WALK_PAGES)
        missed = sorted(set(wanted) - set(mine))
        extra = sorted(set(mine) - set(wanted))
        expect(not missed, "%d keys never seen, e.g. %r" % (len(missed), missed[:3]))
        expect(not extra, "%d keys never written, e.g. %r" % (len(extra), extra[:3]))
        for key, value in wanted.items():
            expect(self.same(mine[key], value), "key %r: value %s, expected %s"
                   % (key, short(mine[key]), short(value)))


def load_bindings(gen_dir, module):
    global Thrudoc, ttypes
    sys.path.insert(0, os.path.abspath(gen_dir))
    try:
        Thrudoc = importlib.import_module(module + ".Thrudoc")
        ttypes = importlib.import_module(module + ".ttypes")
    except ImportError as e:
        print("conformance.py: no bindings `%s` in %s (%s); make them with: "
              "thrift --gen py -out %s tests/interop/original.thrift"
              % (module, gen_dir, e, gen_dir), file=sys.stderr)
        sys.exit(2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gen", required=True,
                        help="directory holding the generated package")
    parser.add_argument("--module", default="thrudoc_original",
                        help="the generated package (default thrudoc_original; "
                             "the project IDL's is thrudoc)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--script", required=True)
    parser.add_argument("--tls-ca", help="speak TLS, trusting this CA (PEM)")
    parser.add_argument("--tls-cert", help="client certificate (PEM)")
    parser.add_argument("--tls-key", help="client key (PEM)")
    args = parser.parse_args()
    load_bindings(args.gen, args.module)
    try:
        with open(args.script, encoding="utf-8") as f:
            script = json.load(f)
    except (OSError, ValueError) as e:
        print("conformance.py: cannot read the script: %s" % e, file=sys.stderr)
        sys.exit(2)
    # TSocket logs each failed connection; the FAIL lines say it already.
    logging.getLogger("thrift").setLevel(logging.CRITICAL)
    driver = Driver(script, args.host, args.port, args)
    passed = failed = 0
    for run in script["runs"]:
        pair = "%s/%s" % (run["transport"], run["protocol"])
        for check in run["checks"]:
            transport = None
            try:
                client, transport = driver.connect(run["transport"], run["protocol"])
                driver.run_check(client, check)
                line = "ok %s %s" % (pair, check["name"])
                passed += 1
            except Exception as e:  # Failed, or the connection itself failed
                line = "FAIL %s %s: %s" % (pair, check["name"], e)
                failed += 1
            finally:
                if transport is not None:
                    try:
                        transport.close()
                    except Exception:  # it may be broken already
                        pass
            print(line, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
