#!/usr/bin/env python3
"""Thrudoc conformance check: an independent Thrift client against a server.

Uses only the Apache Thrift Python library and the bindings the Thrift
compiler generates from idl/thrudoc.thrift (scripts/gen-thrift --py DIR), so
it sees the server the way an existing client in another language does.

Prints `ok <name>` or `FAIL <name>: <why>` per check, then a last line
`N passed, M failed`; exits 0 if every check passed, 1 if any failed, 2 on a
usage or setup error. Each check gets a fresh connection; an unexpected
exception fails that check only. Every key it writes starts with --prefix,
so several runs can share one server and one bucket.
"""

import argparse
import importlib
import logging
import os
import re
import sys
import threading
import traceback
import uuid

try:
    from thrift.protocol import TBinaryProtocol, TCompactProtocol
    from thrift.transport import TSocket, TTransport
except ImportError:
    print("thrudoc_check: the Apache Thrift Python library is missing; "
          "install it with: python3 -m pip install -r %s" % os.path.join(
              os.path.dirname(os.path.abspath(__file__)), "requirements.txt"),
          file=sys.stderr)
    sys.exit(2)

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
MAX_KEY_BYTES = 255
OVERSIZE_VALUE = 2 * 1024 * 1024 + 1
SCAN_PAGE = 10
SCAN_KEYS = 257
MISSING_BUCKET = "no_such_bucket_xyz"
THREADS = 50
KEYS_PER_THREAD = 20

# The generated bindings; load_bindings() fills these in once --gen is known.
Thrudoc = None
ttypes = None
ET = None


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says which."""


def expect(condition, message):
    if not condition:
        raise CheckFailed(message)


def type_name(value):
    return ET._VALUES_TO_NAMES.get(value, repr(value))


def short(value, limit=60):
    """repr() of a value, cut so that a 2 MiB value does not flood the log."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return "%s...(%d chars)" % (text[:limit], len(text))


def describe(error):
    if isinstance(error, ttypes.ThrudocException):
        return "ThrudocException(%s, %r)" % (type_name(error.type), error.what)
    text = "%s: %s" % (type(error).__name__,
                       getattr(error, "message", None) or error)
    inner = getattr(error, "inner", None)
    return "%s (%s)" % (text, inner) if inner else text


def expect_error(call, allowed, doing):
    """Run call(); it must raise ThrudocException of a type in `allowed`."""
    wanted = " or ".join(type_name(t) for t in allowed)
    try:
        result = call()
    except ttypes.ThrudocException as e:
        expect(e.type in allowed, "%s raised %s (%r), expected %s" % (
            doing, type_name(e.type), e.what, wanted))
        expect(e.what, "%s raised %s with an empty `what`" % (
            doing, type_name(e.type)))
        return e
    raise CheckFailed("%s returned %s instead of raising %s" % (
        doing, short(result), wanted))


def expect_value(client, bucket, key, value):
    got = client.get(bucket, key)
    expect(got == value, "get(%s) returned %s, expected %s" % (
        short(key), short(got), short(value)))


def expect_missing(client, bucket, key):
    """get must raise NO_SUCH_KEY: the key is not stored."""
    expect_error(lambda: client.get(bucket, key), (ET.NO_SUCH_KEY,),
                 "get(%r, %s)" % (bucket, short(key)))


def expect_success(ex, doing):
    """A list operation's per-element success: an exception, empty `what`."""
    expect(ex is not None, "%s: the exception field is missing (None); "
           "a success must be an exception with what=\"\"" % doing)
    expect(ex.what == "", "%s: expected success (what=\"\"), "
           "got what=%r type=%s" % (doing, ex.what, type_name(ex.type)))


def expect_failure(ex, wanted, doing):
    expect(ex is not None, "%s: the exception field is missing (None)" % doing)
    expect(ex.what, "%s: expected %s, got an empty `what` (success)" % (
        doing, type_name(wanted)))
    expect(ex.type == wanted, "%s: expected %s, got %s (%r)" % (
        doing, type_name(wanted), type_name(ex.type), ex.what))


def padded_key(prefix, size, fill="k"):
    """A key of exactly `size` UTF-8 bytes: prefix, then `fill` repeated."""
    room = size - len(prefix.encode())
    width = len(fill.encode())
    expect(room >= 0, "prefix %r is longer than %d bytes" % (prefix, size))
    return prefix + "k" * (room % width) + fill * (room // width)


class Context:
    """What every check needs: the target, the bucket, a key namespace."""

    def __init__(self, args):
        self.args = args
        self.bucket = args.bucket
        self.prefix = args.prefix

    def key(self, name):
        return self.prefix + name

    def fresh_prefix(self, name):
        """A key prefix no earlier check or run has written under."""
        return "%s%s-%s/" % (self.prefix, name, uuid.uuid4().hex[:8])

    def connect(self):
        """Open a new connection; returns (client, transport)."""
        socket = TSocket.TSocket(self.args.host, self.args.port)
        socket.setTimeout(self.args.timeout * 1000)
        if self.args.transport == "framed":
            transport = TTransport.TFramedTransport(socket)
        else:
            transport = TTransport.TBufferedTransport(socket)
        # The pure-Python protocols: the accelerated ones are an optional C
        # extension, and this check must not depend on how thrift was built.
        if self.args.protocol == "binary":
            protocol = TBinaryProtocol.TBinaryProtocol(
                transport, strictRead=True, strictWrite=True)
        else:
            protocol = TCompactProtocol.TCompactProtocol(transport)
        transport.open()
        return Thrudoc.Client(protocol), transport


CHECKS = []


def check(name):
    """Register function(ctx, client) as check `name`; they run in order."""
    def register(function):
        CHECKS.append((name, function))
        return function
    return register


# --- 1. buckets -------------------------------------------------------------

@check("get_buckets")
def check_get_buckets(ctx, client):
    buckets = client.getBuckets()
    expect(ctx.bucket in buckets, "bucket %r not in getBuckets() = %r" % (
        ctx.bucket, buckets))


# --- 2. put / get -----------------------------------------------------------

def round_trip(ctx, client, key, value):
    client.put(ctx.bucket, key, value)
    expect_value(client, ctx.bucket, key, value)


@check("put_get")
def check_put_get(ctx, client):
    round_trip(ctx, client, ctx.key("put-get"), b"hello thrudoc")


@check("put_overwrite")
def check_put_overwrite(ctx, client):
    key = ctx.key("overwrite")
    round_trip(ctx, client, key, b"first value, the longer one")
    round_trip(ctx, client, key, b"second")


@check("value_all_bytes")
def check_value_all_bytes(ctx, client):
    round_trip(ctx, client, ctx.key("all-bytes"), bytes(range(256)))


@check("value_empty")
def check_value_empty(ctx, client):
    round_trip(ctx, client, ctx.key("empty-value"), b"")


@check("value_64k")
def check_value_64k(ctx, client):
    value = bytes(i * 7 % 256 for i in range(64 * 1024))
    round_trip(ctx, client, ctx.key("64k"), value)


@check("unicode_key")
def check_unicode_key(ctx, client):
    round_trip(ctx, client, ctx.key("ключ-🔑-鍵"), "значение-🔑-値".encode())


@check("key_max_length")
def check_key_max_length(ctx, client):
    key = padded_key(ctx.fresh_prefix("max"), MAX_KEY_BYTES)
    round_trip(ctx, client, key, b"a key of the largest size allowed")


# --- 3. missing key ---------------------------------------------------------

@check("get_missing")
def check_get_missing(ctx, client):
    expect_missing(client, ctx.bucket, ctx.fresh_prefix("never-written"))


# --- 4. remove --------------------------------------------------------------

@check("remove")
def check_remove(ctx, client):
    key = ctx.key("remove")
    round_trip(ctx, client, key, b"doomed")
    client.remove(ctx.bucket, key)
    expect_missing(client, ctx.bucket, key)
    client.remove(ctx.bucket, key)
    client.remove(ctx.bucket, ctx.fresh_prefix("never-written"))


# --- 5. append --------------------------------------------------------------

@check("append")
def check_append(ctx, client):
    key = ctx.fresh_prefix("append")
    expect_missing(client, ctx.bucket, key)
    client.append(ctx.bucket, key, b"ab")
    expect_value(client, ctx.bucket, key, b"ab")
    client.append(ctx.bucket, key, b"\x00cd\xff")
    expect_value(client, ctx.bucket, key, b"ab\x00cd\xff")
    client.append(ctx.bucket, key, b"")
    expect_value(client, ctx.bucket, key, b"ab\x00cd\xff")


# --- 6. putValue ------------------------------------------------------------

@check("put_value")
def check_put_value(ctx, client):
    first = client.putValue(ctx.bucket, b"first anonymous value")
    second = client.putValue(ctx.bucket, b"second anonymous value")
    for key in (first, second):
        expect(UUID_RE.match(key or ""),
               "putValue returned %r, which is not a UUID" % key)
    expect(first != second, "putValue returned %r twice" % first)
    expect_value(client, ctx.bucket, first, b"first anonymous value")
    expect_value(client, ctx.bucket, second, b"second anonymous value")


# --- 7. scan ----------------------------------------------------------------

@check("scan_walk")
def check_scan_walk(ctx, client):
    """Walk the whole bucket (other runs' keys too) and find ours once each."""
    prefix = ctx.fresh_prefix("scan")
    mine = {"%s%04d" % (prefix, i): b"scan value %d \x00\xff" % i
            for i in range(SCAN_KEYS)}
    for key, value in mine.items():
        client.put(ctx.bucket, key, value)

    seen = set()
    seed = ""
    for page in range(1, ctx.args.max_scan_pages + 1):
        response = client.scan(ctx.bucket, seed, SCAN_PAGE)
        elements = response.elements or []
        expect(len(elements) <= SCAN_PAGE,
               "page %d holds %d elements, more than count=%d" % (
                   page, len(elements), SCAN_PAGE))
        for element in elements:
            where = "page %d, key %r" % (page, element.key)
            expect(element.bucket == ctx.bucket, "%s: bucket is %r" % (
                where, element.bucket))
            expect(element.key not in seen, "%s: key seen twice" % where)
            seen.add(element.key)
            if element.key in mine:
                expect(element.value == mine[element.key],
                       "%s: value %s, expected %s" % (
                           where, short(element.value),
                           short(mine[element.key])))
            else:
                expect(not element.key.startswith(prefix),
                       "%s: this key was never written" % where)
        if len(elements) < SCAN_PAGE:
            break
        # Seed "" would start the walk over.
        expect(response.seed, "page %d is full but its seed is %r" % (
            page, response.seed))
        seed = response.seed
    else:
        raise CheckFailed("the walk did not end within %d pages "
                          "(--max-scan-pages)" % ctx.args.max_scan_pages)

    missed = sorted(set(mine) - seen)
    expect(not missed, "%d of the %d keys written were never seen, e.g. %r"
           % (len(missed), SCAN_KEYS, missed[:3]))


# --- 8. list operations -----------------------------------------------------

def list_fixture(ctx, name):
    """Five elements under a fresh prefix; the third names no bucket."""
    prefix = ctx.fresh_prefix(name)
    elements = [ttypes.Element(bucket=ctx.bucket, key="%s%d" % (prefix, i),
                               value=b"list value %d" % i) for i in range(5)]
    third = elements[2]
    elements[2] = ttypes.Element(bucket=MISSING_BUCKET, key=third.key,
                                 value=third.value)
    return prefix, elements


def put_each(client, elements):
    """Store the elements one by one (list checks don't rely on putList)."""
    for e in elements:
        if e.bucket != MISSING_BUCKET:
            client.put(e.bucket, e.key, e.value)


def expect_list_length(results, wanted, method):
    count = None if results is None else len(results)
    expect(count == wanted, "%s returned %s results for %d elements" % (
        method, count, wanted))


def expect_get_list(client, request, present):
    """getList(request): the values of `present`, the right errors else."""
    results = client.getList(request)
    expect_list_length(results, len(request), "getList")
    for i, (asked, result) in enumerate(zip(request, results)):
        doing = "getList element %d (%r)" % (i, asked.key)
        expect(result is not None, "%s: no ListResponse" % doing)
        if asked.bucket == MISSING_BUCKET:
            expect_failure(result.ex, ET.NO_SUCH_BUCKET, doing)
        elif asked.key not in present:
            expect_failure(result.ex, ET.NO_SUCH_KEY, doing)
        else:
            expect_success(result.ex, doing)
            element = result.element
            expect(element is not None, "%s: no element" % doing)
            expect(element.key == asked.key, "%s: the response is for %r" % (
                doing, element.key))
            expect(element.value == present[asked.key],
                   "%s: value %s, expected %s" % (
                       doing, short(element.value),
                       short(present[asked.key])))


@check("put_list")
def check_put_list(ctx, client):
    _, elements = list_fixture(ctx, "put-list")
    results = client.putList(elements)
    expect_list_length(results, len(elements), "putList")
    for i, result in enumerate(results):
        doing = "putList element %d" % i
        if i == 2:
            expect_failure(result, ET.NO_SUCH_BUCKET, doing)
        else:
            expect_success(result, doing)
    for i, e in enumerate(elements):
        if i == 2:
            expect_missing(client, ctx.bucket, e.key)
        else:
            expect_value(client, e.bucket, e.key, e.value)


@check("get_list")
def check_get_list(ctx, client):
    prefix, elements = list_fixture(ctx, "get-list")
    put_each(client, elements)
    missing = ttypes.Element(bucket=ctx.bucket, key=prefix + "missing")
    request = elements[:3] + [missing] + elements[3:]
    present = {e.key: e.value for e in elements if e.bucket == ctx.bucket}
    expect_get_list(client, request, present)


@check("remove_list")
def check_remove_list(ctx, client):
    prefix, elements = list_fixture(ctx, "remove-list")
    put_each(client, elements)
    # Removing a missing key is a success, as remove() of one is.
    missing = ttypes.Element(bucket=ctx.bucket, key=prefix + "missing")
    request = elements + [missing]
    results = client.removeList(request)
    expect_list_length(results, len(request), "removeList")
    for i, result in enumerate(results):
        doing = "removeList element %d" % i
        if i == 2:
            expect_failure(result, ET.NO_SUCH_BUCKET, doing)
        else:
            expect_success(result, doing)
    expect_get_list(client, request, present={})


@check("put_value_list")
def check_put_value_list(ctx, client):
    ignored = ctx.fresh_prefix("put-value-list-ignored")
    values = [b"anonymous %d \x00" % i for i in range(3)]
    results = client.putValueList([
        ttypes.Element(bucket=ctx.bucket, key=ignored, value=v)
        for v in values])
    expect_list_length(results, len(values), "putValueList")
    keys = []
    for i, (value, result) in enumerate(zip(values, results)):
        doing = "putValueList element %d" % i
        expect(result is not None, "%s: no ListResponse" % doing)
        expect_success(result.ex, doing)
        expect(result.element is not None, "%s: no element" % doing)
        key = result.element.key
        expect(UUID_RE.match(key or ""), "%s: key %r is not a UUID" % (
            doing, key))
        keys.append(key)
        expect_value(client, ctx.bucket, key, value)
    expect(len(set(keys)) == len(keys), "repeated keys: %r" % keys)
    expect_missing(client, ctx.bucket, ignored)


# --- 9. admin ---------------------------------------------------------------

@check("admin_echo")
def check_admin_echo(ctx, client):
    answer = client.admin("echo", "hello")
    expect(answer == "hello", "admin('echo', 'hello') returned %r" % answer)


@check("admin_unknown_op")
def check_admin_unknown_op(ctx, client):
    expect_error(lambda: client.admin("no_such_op", ""),
                 (ET.INVALID_ARGUMENT,), "admin('no_such_op', '')")
    expect_still_serving(ctx, client)


# --- 10. bad input: a clear error, the server goes on, nothing changes ------

def expect_still_serving(ctx, client):
    """The connection that just got an error must still answer."""
    buckets = client.getBuckets()
    expect(ctx.bucket in buckets, "after the error, getBuckets() = %r" % (
        buckets,))


def expect_bad_bucket(ctx, client, bucket, wanted):
    key = ctx.fresh_prefix("bad-bucket")
    calls = [
        ("put", lambda: client.put(bucket, key, b"v")),
        ("get", lambda: client.get(bucket, key)),
        ("append", lambda: client.append(bucket, key, b"v")),
        ("remove", lambda: client.remove(bucket, key)),
        ("putValue", lambda: client.putValue(bucket, b"v")),
        ("scan", lambda: client.scan(bucket, "", SCAN_PAGE)),
    ]
    for method, call in calls:
        expect_error(call, (wanted,), "%s(bucket=%r)" % (method, bucket))
        expect_still_serving(ctx, client)
    # Nor did the writes land in the real bucket.
    expect_missing(client, ctx.bucket, key)


@check("bad_bucket_empty")
def check_bad_bucket_empty(ctx, client):
    expect_bad_bucket(ctx, client, "", ET.INVALID_ARGUMENT)


@check("bad_bucket_injection")
def check_bad_bucket_injection(ctx, client):
    expect_bad_bucket(ctx, client, "data; DROP TABLE directory; --",
                      ET.INVALID_ARGUMENT)


@check("bad_bucket_unknown")
def check_bad_bucket_unknown(ctx, client):
    expect_bad_bucket(ctx, client, "nosuchbucket", ET.NO_SUCH_BUCKET)


def expect_bad_key(ctx, client, key):
    calls = [
        ("put", lambda: client.put(ctx.bucket, key, b"v")),
        ("append", lambda: client.append(ctx.bucket, key, b"v")),
        ("get", lambda: client.get(ctx.bucket, key)),
        ("remove", lambda: client.remove(ctx.bucket, key)),
    ]
    for method, call in calls:
        expect_error(call, (ET.INVALID_ARGUMENT,), "%s(key=%s)" % (
            method, short(key)))
        expect_still_serving(ctx, client)


@check("bad_key_empty")
def check_bad_key_empty(ctx, client):
    expect_bad_key(ctx, client, "")


@check("bad_key_too_long")
def check_bad_key_too_long(ctx, client):
    prefix = ctx.fresh_prefix("long")
    # The limit is in UTF-8 bytes: 128 two-byte characters are too many.
    for key in (padded_key(prefix, 1000),
                padded_key(prefix, MAX_KEY_BYTES + 1),
                padded_key(prefix, MAX_KEY_BYTES + 1, fill="é")):
        expect_bad_key(ctx, client, key)
        # Nor was it stored cut down to the limit.
        cut = key.encode()[:MAX_KEY_BYTES].decode(errors="ignore")
        expect_missing(client, ctx.bucket, cut)


@check("bad_value_too_large")
def check_bad_value_too_large(ctx, client):
    big = b"x" * OVERSIZE_VALUE
    fresh = ctx.fresh_prefix("big")
    expect_error(lambda: client.put(ctx.bucket, fresh, big),
                 (ET.INVALID_ARGUMENT,),
                 "put of a %d-byte value" % OVERSIZE_VALUE)
    expect_still_serving(ctx, client)
    expect_missing(client, ctx.bucket, fresh)

    existing = ctx.fresh_prefix("big-existing")
    round_trip(ctx, client, existing, b"original")
    expect_error(lambda: client.put(ctx.bucket, existing, big),
                 (ET.INVALID_ARGUMENT,),
                 "put of a %d-byte value over a key" % OVERSIZE_VALUE)
    expect_value(client, ctx.bucket, existing, b"original")
    expect_error(lambda: client.append(ctx.bucket, existing, big),
                 (ET.INVALID_ARGUMENT,),
                 "append of a %d-byte value" % OVERSIZE_VALUE)
    expect_value(client, ctx.bucket, existing, b"original")


def expect_bad_scan(ctx, client, seed, count):
    expect_error(lambda: client.scan(ctx.bucket, seed, count),
                 (ET.INVALID_ARGUMENT,),
                 "scan(seed=%r, count=%d)" % (seed, count))
    expect_still_serving(ctx, client)


@check("bad_scan_count_negative")
def check_bad_scan_count_negative(ctx, client):
    expect_bad_scan(ctx, client, "", -1)


@check("bad_scan_count_zero")
def check_bad_scan_count_zero(ctx, client):
    expect_bad_scan(ctx, client, "", 0)


@check("bad_scan_count_huge")
def check_bad_scan_count_huge(ctx, client):
    expect_bad_scan(ctx, client, "", 2 ** 31 - 1)


@check("bad_scan_seed")
def check_bad_scan_seed(ctx, client):
    expect_bad_scan(ctx, client, "garbage!!", SCAN_PAGE)


# --- 11. concurrency --------------------------------------------------------

@check("concurrency")
def check_concurrency(ctx, client):
    """THREADS connections at once, each writing and reading its own keys."""
    prefix = ctx.fresh_prefix("threads")
    errors = []
    start = threading.Barrier(THREADS, timeout=ctx.args.timeout)

    def worker(n):
        transport = None
        try:
            try:
                own, transport = ctx.connect()
            finally:
                start.wait()  # all connected: now hit the server at once
            data = {"%s%02d-%02d" % (prefix, n, i):
                    os.urandom(16) + b"%d/%d" % (n, i)
                    for i in range(KEYS_PER_THREAD)}
            for key, value in data.items():
                own.put(ctx.bucket, key, value)
            for key, value in data.items():
                got = own.get(ctx.bucket, key)
                if got != value:
                    errors.append("thread %d: get(%r) returned %s, "
                                  "expected %s" % (n, key, short(got),
                                                   short(value)))
        except Exception as e:  # whatever broke the thread is the report
            errors.append("thread %d: %s" % (n, describe(e)))
        finally:
            if transport is not None:
                transport.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True)
               for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(ctx.args.timeout * 4)
    hung = sum(t.is_alive() for t in threads)
    expect(not hung, "%d threads did not finish in time" % hung)
    expect(not errors, "%d errors, the first: %s" % (
        len(errors), errors[0] if errors else ""))


# --- last: the server survived all of the above -----------------------------

@check("server_alive")
def check_server_alive(ctx, client):
    check_get_buckets(ctx, client)


# --- runner -----------------------------------------------------------------

def run_check(ctx, name, function):
    """Run one check on a fresh connection; returns its report line."""
    transport = None
    try:
        client, transport = ctx.connect()
        function(ctx, client)
    except CheckFailed as e:
        return "FAIL %s: %s" % (name, e)
    except Exception as e:  # an unexpected error fails this check only
        if ctx.args.verbose:
            traceback.print_exc()
        return "FAIL %s: unexpected %s" % (name, describe(e))
    finally:
        if transport is not None:
            try:
                transport.close()
            except Exception:  # the connection may be broken already
                pass
    return "ok %s" % name


def load_bindings(gen_dir):
    global Thrudoc, ttypes, ET
    sys.path.insert(0, os.path.abspath(gen_dir))
    try:
        Thrudoc = importlib.import_module("thrudoc.Thrudoc")
        ttypes = importlib.import_module("thrudoc.ttypes")
    except ImportError as e:
        print("thrudoc_check: no generated bindings in %s (%s); make them "
              "with: scripts/gen-thrift --py %s" % (gen_dir, e, gen_dir),
              file=sys.stderr)
        sys.exit(2)
    ET = ttypes.ExceptionType


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Thrudoc conformance check (independent Thrift client)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--transport", choices=("framed", "unframed"),
                        required=True)
    parser.add_argument("--protocol", choices=("binary", "compact"),
                        required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--gen", required=True,
                        help="directory that holds the generated package "
                             "`thrudoc` (scripts/gen-thrift --py DIR)")
    parser.add_argument("--prefix",
                        default="check-%s/" % uuid.uuid4().hex[:12],
                        help="prefix of every key written (default: random)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this check (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="socket timeout, seconds (default 30)")
    parser.add_argument("--max-scan-pages", type=int, default=100000,
                        help="fail a scan walk that goes on for longer")
    parser.add_argument("--verbose", action="store_true",
                        help="print tracebacks and the thrift library's log")
    args = parser.parse_args(argv)
    names = [name for name, _ in CHECKS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        parser.error("unknown check(s) %s; the checks are: %s" % (
            ", ".join(unknown), ", ".join(names)))
    return args


def main(argv=None):
    args = parse_args(argv)
    load_bindings(args.gen)
    if not args.verbose:
        # TSocket logs each refused connection; the FAIL lines say it already.
        logging.getLogger("thrift").setLevel(logging.CRITICAL)
    ctx = Context(args)
    print("# thrudoc_check %s:%d %s/%s bucket=%r prefix=%r" % (
        args.host, args.port, args.transport, args.protocol, args.bucket,
        args.prefix), flush=True)
    passed = failed = 0
    for name, function in CHECKS:
        if args.only and name not in args.only:
            continue
        line = run_check(ctx, name, function)
        print(line, flush=True)
        if line.startswith("ok "):
            passed += 1
        else:
            failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
