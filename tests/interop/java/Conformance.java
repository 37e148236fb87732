/*
 * Thrudoc conformance driver for Java: runs a conformance script (JSON; its format, the
 * command line, the output lines and the exit statuses are in tests/interop/README.md)
 * against a server, with the bindings the Thrift compiler generates from the original IDL
 * and Debian's libthrift-java (0.16). Built and run by hand as tests/interop.rs does it:
 *
 *   thrift --gen java:generated_annotations=suppress -out /tmp/jgen tests/interop/original.thrift
 *   javac -nowarn -d /tmp/jclasses -cp /usr/share/java/thrift.jar:/usr/share/java/slf4j-api.jar \
 *       /tmp/jgen/thrudoc/*.java tests/interop/java/Conformance.java
 *   java -cp /tmp/jclasses:/usr/share/java/thrift.jar:/usr/share/java/slf4j-api.jar \
 *       Conformance --host 127.0.0.1 --port 9091 --script SCRIPT.json
 *
 * `generated_annotations=suppress` keeps @javax.annotation.Generated out of the bindings: the
 * JDK has had no javax.annotation since 11 (Debian's thrift.jar names geronimo-annotation in
 * its manifest's Class-Path, which would supply it, but nothing here relies on that). slf4j-api
 * is what libthrift logs through; with no binding on the class path it prints a three-line
 * warning on stderr and logs nothing.
 *
 * The bindings are the original IDL's: values are `string` (java.lang.String, sent and read
 * as UTF-8) and ThrudocException has no `code`, so this driver takes only scripts with
 * "idl": "original" and "values": "text", and exits 2 on any other.
 */

import java.io.*;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.*;
import java.util.regex.Pattern;

import org.apache.thrift.TConfiguration;
import org.apache.thrift.TException;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.protocol.TCompactProtocol;
import org.apache.thrift.transport.TSocket;
import org.apache.thrift.transport.TTransport;
import org.apache.thrift.transport.TTransportException;
import org.apache.thrift.transport.layered.TFramedTransport;  // 0.14+: no longer in .transport

import thrudoc.*;

public class Conformance {
    /**
     * Only a launcher: libthrift and the bindings are looked up first, so that a class path
     * without them is a setup error (exit 2) with a hint, not a NoClassDefFoundError (exit 1).
     * Everything that names their classes is in Driver, which the JVM loads after this check.
     */
    public static void main(String[] argv) {
        String[][] needed = {
            {"org.apache.thrift.TException",
                "libthrift: /usr/share/java/thrift.jar (apt-get install -y libthrift-java)"},
            {"org.slf4j.LoggerFactory", "slf4j-api, which libthrift needs: /usr/share/java/slf4j-api.jar"},
            {"thrudoc.Thrudoc", "the bindings: thrift --gen java:generated_annotations=suppress -out GEN "
                + "tests/interop/original.thrift, compiled with javac onto the class path"},
        };
        for (String[] n : needed) {
            try {
                Class.forName(n[0], false, Conformance.class.getClassLoader());
            } catch (ClassNotFoundException | LinkageError e) {
                System.err.println("Conformance: " + n[0] + " is not on the class path; it is in " + n[1]);
                System.exit(2);
            }
        }
        Driver.main(argv);
    }

    /** The driver proper. */
    static final class Driver {
        static final Pattern UUID = Pattern.compile(
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}");
        static final int MAX_WALK_PAGES = 100_000;
        static final int TIMEOUT_MS = 30_000;
        // libthrift enforces a maximum message and frame size on the client too. The largest
        // message of a script carries a 2 MiB + 1 value, which the *server* must refuse with an
        // error; the client must not refuse to send it first, so the limits are well above it.
        static final int MAX_SIZE = 64 * 1024 * 1024;
        // What a void method "returns", so that "void" can be told from a value.
        static final Object VOID = new Object() { public String toString() { return "nothing"; } };
        static final Set<String> BATCH = Set.of("putList", "getList", "removeList", "putValueList");
        static final String USAGE = "usage: Conformance --host H --port P --script FILE";

        /** An expectation of the script did not hold (or a step is malformed); says which. */
        static final class Failed extends Exception { Failed(String m) { super(m); } }

        /** Setup error (exit 2): bad command line, script missing, unreadable or not for Java. */
        static final class Setup extends Exception { Setup(String m) { super(m); } }

        /** An expected error, `{"type": T, "code": C, "what": W}`; `code` is the new IDL's only. */
        static final class Want {
            final int type;
            final String what;
            Want(Object spec) throws Failed {
                Map<String, Object> m = obj(spec, "the error");
                type = i32(m.get("type"), "the error's type");
                what = str(m.get("what"), "the error's what");
            }
            public String toString() { return "ThrudocException(type=" + type + ", what~" + show(what) + ")"; }
        }

        final String host, bucket;
        final int port;

        Driver(String host, int port, String bucket) {
            this.host = host;
            this.port = port;
            this.bucket = bucket;
        }

        static void main(String[] argv) {
            // Our own UTF-8 stream: System.out would print keys as '?' under a C/POSIX locale.
            PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8);
            try {
                System.exit(run(argv, out));
            } catch (Setup e) {
                System.err.println("Conformance: " + e.getMessage());
                System.exit(2);
            }
        }

        static int run(String[] argv, PrintStream out) throws Setup {
            String host = "127.0.0.1", port = null, file = null;
            for (int i = 0; i < argv.length; i += 2) {
                if (i + 1 >= argv.length) throw new Setup("option " + argv[i] + " needs a value; " + USAGE);
                switch (argv[i]) {
                    case "--host": host = argv[i + 1]; break;
                    case "--port": port = argv[i + 1]; break;
                    case "--script": file = argv[i + 1]; break;
                    default: throw new Setup("unknown option " + argv[i] + "; " + USAGE);
                }
            }
            if (port == null || file == null) throw new Setup(USAGE);
            int portNumber;
            try {
                portNumber = Integer.parseInt(port);
            } catch (NumberFormatException e) {
                throw new Setup("bad port " + port);
            }
            Object script = readScript(file);
            List<Object> runs;
            String bucket;
            try {  // the shape of the script as a whole; a malformed step fails its check only
                Map<String, Object> root = obj(script, "the script");
                bucket = str(root.get("bucket"), "`bucket`");
                String idl = str(root.get("idl"), "`idl`"), values = str(root.get("values"), "`values`");
                if (idl.equals("new")) {
                    throw new Setup(file + " is a script for the new IDL, but the Java driver is built "
                        + "against the original IDL, whose ThrudocException has no `code` to read");
                }
                if (!idl.equals("original")) throw new Failed("unknown idl " + show(idl));
                if (values.equals("bytes")) {
                    throw new Setup(file + " is a `bytes` script, but the original IDL's values are "
                        + "`string`, which Java sends and reads as UTF-8 text: raw bytes cannot round-trip");
                }
                if (!values.equals("text")) throw new Failed("unknown values " + show(values));
                runs = list(root.get("runs"), "`runs`");
                for (Object r : runs) {
                    Map<String, Object> m = obj(r, "a run");
                    str(m.get("transport"), "a run's transport");
                    str(m.get("protocol"), "a run's protocol");
                    for (Object c : list(m.get("checks"), "a run's checks")) {
                        str(obj(c, "a check").get("name"), "a check's name");
                        list(obj(c, "a check").get("steps"), "a check's steps");
                    }
                }
            } catch (Failed e) {
                throw new Setup(file + ": " + e.getMessage());
            }

            Driver driver = new Driver(host, portNumber, bucket);
            int passed = 0, failed = 0;
            for (Object r : runs) {
                Map<String, Object> m = cast(r);
                String transport = (String) m.get("transport"), protocol = (String) m.get("protocol");
                for (Object c : (List<?>) m.get("checks")) {
                    Map<String, Object> check = cast(c);
                    String what = transport + "/" + protocol + " " + check.get("name");
                    TTransport connection = null;
                    try {  // every check on a fresh connection
                        connection = driver.connect(transport, protocol);
                        Thrudoc.Client client = new Thrudoc.Client(protocol.equals("binary")
                            ? new TBinaryProtocol(connection, true, true)  // strict read and write
                            : new TCompactProtocol(connection));
                        driver.runCheck(client, cast(check.get("steps")));
                        out.println("ok " + what);
                        passed++;
                    } catch (Failed e) {
                        out.println("FAIL " + what + ": " + e.getMessage());
                        failed++;
                    } finally {
                        if (connection != null) connection.close();
                    }
                }
            }
            out.println(passed + " passed, " + failed + " failed");
            return failed == 0 ? 0 : 1;
        }

        static Object readScript(String file) throws Setup {
            try {
                String text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT).onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(Files.readAllBytes(Paths.get(file)))).toString();
                return Json.parse(text);
            } catch (CharacterCodingException e) {
                throw new Setup("cannot read the script " + file + ": it is not UTF-8");
            } catch (IOException e) {
                throw new Setup("cannot read the script " + file + ": " + e);
            } catch (IllegalArgumentException e) {
                throw new Setup("cannot read the script " + file + ": bad JSON: " + e.getMessage());
            }
        }

        /** A fresh connection: framed, or the bare socket ("unframed"; TSocket buffers itself). */
        TTransport connect(String transport, String protocol) throws Failed {
            if (!transport.equals("framed") && !transport.equals("unframed")) {
                throw new Failed("unknown transport " + show(transport));
            }
            if (!protocol.equals("binary") && !protocol.equals("compact")) {
                throw new Failed("unknown protocol " + show(protocol));
            }
            try {
                TConfiguration config = new TConfiguration(MAX_SIZE, MAX_SIZE, TConfiguration.DEFAULT_RECURSION_DEPTH);
                TSocket socket = new TSocket(config, host, port, TIMEOUT_MS);
                TTransport t = transport.equals("framed") ? new TFramedTransport(socket, MAX_SIZE) : socket;
                t.open();
                return t;
            } catch (TTransportException e) {
                throw new Failed("cannot connect to " + host + ":" + port + ": " + message(e));
            }
        }

        // --- one check ------------------------------------------------------------------------

        void runCheck(Thrudoc.Client client, List<Object> steps) throws Failed {
            Set<String> keys = new HashSet<>();  // every key putValue/putValueList returned so far
            for (int index = 0; index < steps.size(); index++) {
                Object s = steps.get(index);
                Object label = s instanceof Map ? ((Map<?, ?>) s).get("method") : null;
                if (label == null && s instanceof Map) label = ((Map<?, ?>) s).get("op");
                String where = "step " + index + " (" + label + ")";
                try {
                    Map<String, Object> step = obj(s, "the step");
                    Object op = step.get("op");
                    if ("call".equals(op)) call(client, step, keys);
                    else if ("walk".equals(op)) walk(client, step);
                    else throw new Failed("unknown op " + show(op));
                } catch (Failed e) {
                    throw new Failed(where + ": " + e.getMessage());
                } catch (ThrudocException e) {
                    throw new Failed(where + ": unexpected " + describe(e));
                } catch (TException | RuntimeException e) {  // transport, protocol, application
                    throw new Failed(where + ": unexpected " + e.getClass().getSimpleName() + ": " + message(e));
                }
            }
        }

        Object invoke(Thrudoc.Client c, String method, List<Object> args) throws Failed, TException {
            switch (method) {
                case "getBuckets":
                    arity(args, 0);
                    return c.getBuckets();
                case "put":
                case "append": {
                    arity(args, 3);
                    String b = str(args.get(0), "the bucket"), k = str(args.get(1), "the key"), v = value(args.get(2));
                    if (method.equals("put")) c.put(b, k, v); else c.append(b, k, v);
                    return VOID;
                }
                case "get":
                    arity(args, 2);
                    return c.get(str(args.get(0), "the bucket"), str(args.get(1), "the key"));
                case "remove":
                    arity(args, 2);
                    c.remove(str(args.get(0), "the bucket"), str(args.get(1), "the key"));
                    return VOID;
                case "putValue":
                    arity(args, 2);
                    return c.putValue(str(args.get(0), "the bucket"), value(args.get(1)));
                case "scan":
                    arity(args, 3);
                    return c.scan(str(args.get(0), "the bucket"), str(args.get(1), "the seed"),
                                  i32(args.get(2), "the count"));
                case "admin":
                    arity(args, 2);
                    return c.admin(str(args.get(0), "the op"), str(args.get(1), "the data"));
                case "putList": return c.putList(elements(args));
                case "getList": return c.getList(elements(args));
                case "removeList": return c.removeList(elements(args));
                case "putValueList": return c.putValueList(elements(args));
                default: throw new Failed("unknown method " + show(method));
            }
        }

        void call(Thrudoc.Client c, Map<String, Object> step, Set<String> keys) throws Failed, TException {
            String method = str(step.get("method"), "the method");
            List<Object> args = list(step.get("args"), "the args");
            if (!step.containsKey("expect")) throw new Failed("bad script: the step has no expect");
            Object want = step.get("expect");
            String form = formOf(want);
            if (form.equals("error")) {
                Want error = new Want(arg(want, "error"));
                Object result;
                try {
                    result = invoke(c, method, args);
                } catch (ThrudocException e) {
                    checkError(e, error, "the exception");
                    afterError(c);
                    return;
                }
                throw new Failed("returned " + show(result) + " instead of throwing " + error);
            }
            Object result = invoke(c, method, args), arg = arg(want, form);
            switch (form) {
                case "void":
                    if (result != VOID) throw new Failed("returned " + show(result) + ", expected nothing");
                    return;
                case "contains":
                    if (!(result instanceof List) || !((List<?>) result).contains(str(arg, "contains"))) {
                        throw new Failed(show(arg) + " is not in " + show(result));
                    }
                    return;
                case "value":
                case "string": {
                    String expected = form.equals("value") ? value(arg) : str(arg, "the string");
                    if (!expected.equals(result)) {
                        throw new Failed("returned " + show(result) + ", expected " + show(expected));
                    }
                    return;
                }
                case "new_key":
                    if (!method.equals("putValue") || !Boolean.TRUE.equals(arg)) break;
                    checkNewKey(c, str(args.get(0), "the bucket"), result, value(args.get(1)), keys);
                    return;
                case "results":
                    if (!BATCH.contains(method)) break;
                    checkResults(c, method, elements(args), (List<?>) result, list(arg, "the results"), keys);
                    return;
                default:
            }
            throw new Failed("unknown expect form " + show(want) + " for " + method);
        }

        /** After every error the connection must go on serving: getBuckets lists the bucket. */
        void afterError(Thrudoc.Client c) throws Failed {
            List<String> buckets;
            try {
                buckets = c.getBuckets();
            } catch (TException e) {
                throw new Failed("after the error, getBuckets() on the same connection failed: "
                    + (e instanceof ThrudocException ? describe((ThrudocException) e)
                       : e.getClass().getSimpleName() + ": " + message(e)));
            }
            if (buckets == null || !buckets.contains(bucket)) {
                throw new Failed("after the error, getBuckets() on the same connection returned "
                    + show(buckets) + ", without " + show(bucket));
            }
        }

        /** An expectation's form: "void"/"ok" as they are, the one key of an object, else "?". */
        static String formOf(Object want) {
            if (want instanceof String) return want.equals("void") || want.equals("ok") ? (String) want : "?";
            if (want instanceof Map && ((Map<?, ?>) want).size() == 1) {
                return (String) ((Map<?, ?>) want).keySet().iterator().next();
            }
            return "?";
        }

        /** The argument of a one-key form (null for "void" and "ok"). */
        static Object arg(Object want, String form) {
            return want instanceof Map ? ((Map<?, ?>) want).get(form) : null;
        }

        static void checkError(ThrudocException ex, Want want, String what) throws Failed {
            if (ex == null) throw new Failed(what + " is missing (null), expected " + want);
            String w = ex.getWhat();
            if (w == null || w.isEmpty()) throw new Failed(what + " has an empty `what`: " + describe(ex));
            // An absent `type` reads as the default UNKNOWN (the constructor sets it), but a value
            // the original IDL does not know reads as null: the server must never send one.
            ExceptionType type = ex.getType();
            if (type == null) {
                throw new Failed(what + " has a `type` the original IDL's ExceptionType does not know "
                    + "(the Java bindings read it as null), expected " + want.type + " (what=" + show(w) + ")");
            }
            if (type.getValue() != want.type) {
                throw new Failed(what + " has type " + type + " (" + type.getValue() + "), expected "
                    + want.type + " (what=" + show(w) + ")");
            }
            if (!w.contains(want.what)) {
                throw new Failed(what + ": `what` " + show(w) + " does not name " + show(want.what));
            }
        }

        /** A batch success: an exception that is there, with an empty `what`. */
        static void checkSuccess(ThrudocException ex, String what) throws Failed {
            if (ex == null) {
                throw new Failed(what + " is missing (null); a success is an exception with an empty `what`");
            }
            if (!"".equals(ex.getWhat())) throw new Failed(what + ": expected success, got " + describe(ex));
        }

        /** A key putValue(List) returned: a UUID, new in this check, and `get` gives the value. */
        void checkNewKey(Thrudoc.Client c, String bucket, Object key, String value, Set<String> keys)
                throws Failed, TException {
            if (!(key instanceof String) || !UUID.matcher((String) key).matches()) {
                throw new Failed("key " + show(key) + " is not a UUID");
            }
            if (!keys.add((String) key)) throw new Failed("key " + show(key) + " was returned before in this check");
            String got;
            try {
                got = c.get(bucket, (String) key);
            } catch (ThrudocException e) {
                throw new Failed("get of new key " + show(key) + " threw " + describe(e));
            }
            if (!value.equals(got)) {
                throw new Failed("get of new key " + show(key) + " returned " + show(got)
                    + ", expected " + show(value));
            }
        }

        void checkResults(Thrudoc.Client c, String method, List<Element> sent, List<?> results,
                          List<Object> wanted, Set<String> keys) throws Failed, TException {
            if (wanted.size() != sent.size()) {
                throw new Failed("bad script: " + wanted.size() + " results expected of " + sent.size() + " elements");
            }
            if (results == null || results.size() != sent.size()) {
                throw new Failed((results == null ? "no" : "" + results.size()) + " results for "
                    + sent.size() + " elements");
            }
            boolean exceptions = method.equals("putList") || method.equals("removeList");
            for (int i = 0; i < sent.size(); i++) {
                String what = "result " + i;
                ThrudocException ex;
                Element element = null, asked = sent.get(i);
                if (exceptions) {
                    ex = (ThrudocException) results.get(i);
                } else {
                    ListResponse response = (ListResponse) results.get(i);
                    if (response == null) throw new Failed(what + ": no ListResponse (null)");
                    ex = response.getEx();
                    element = response.getElement();
                }
                Object want = wanted.get(i);
                String form = formOf(want);
                if (form.equals("error")) {
                    checkError(ex, new Want(arg(want, "error")), what);
                } else if (form.equals("ok") && exceptions) {
                    checkSuccess(ex, what);
                } else if (form.equals("value") && method.equals("getList")) {
                    checkSuccess(ex, what);
                    if (element == null) throw new Failed(what + ": a success without an element");
                    if (!asked.getKey().equals(element.getKey())) {
                        throw new Failed(what + ": the element is for key " + show(element.getKey())
                            + ", not " + show(asked.getKey()));
                    }
                    String expected = value(arg(want, "value"));
                    if (!expected.equals(element.getValue())) {
                        throw new Failed(what + ": value " + show(element.getValue()) + ", expected " + show(expected));
                    }
                } else if (form.equals("new_key") && method.equals("putValueList")
                           && Boolean.TRUE.equals(arg(want, form))) {
                    checkSuccess(ex, what);
                    if (element == null) throw new Failed(what + ": a success without an element");
                    try {
                        checkNewKey(c, asked.getBucket(), element.getKey(), asked.getValue(), keys);
                    } catch (Failed e) {
                        throw new Failed(what + ": " + e.getMessage());
                    }
                } else {
                    throw new Failed(what + ": unknown expect form " + show(want) + " for " + method);
                }
            }
        }

        void walk(Thrudoc.Client c, Map<String, Object> step) throws Failed, TException {
            String b = str(step.get("bucket"), "the walk's bucket");
            String prefix = str(step.get("prefix"), "the walk's prefix");
            int count = i32(step.get("count"), "the walk's count");
            Map<String, String> wanted = new LinkedHashMap<>();
            for (Map.Entry<String, Object> e : obj(step.get("expect"), "the walk's expect").entrySet()) {
                wanted.put(e.getKey(), value(e.getValue()));
            }
            Set<String> seen = new HashSet<>();
            Map<String, String> mine = new HashMap<>();  // what the walk found under the prefix
            String seed = "";
            for (int page = 1; ; page++) {
                if (page > MAX_WALK_PAGES) throw new Failed("the walk did not end within " + MAX_WALK_PAGES + " pages");
                ScanResponse response = c.scan(b, seed, count);
                if (response == null) throw new Failed("page " + page + ": no ScanResponse (null)");
                List<Element> elements = response.getElements() == null ? List.of() : response.getElements();
                if (elements.size() > count) {
                    throw new Failed("page " + page + " holds " + elements.size() + " elements, more than " + count);
                }
                for (Element e : elements) {
                    if (e == null || e.getKey() == null) {
                        throw new Failed("page " + page + ": an element without a key");
                    }
                    if (!b.equals(e.getBucket())) {
                        throw new Failed("page " + page + ": element " + show(e.getKey())
                            + " of bucket " + show(e.getBucket()));
                    }
                    if (!seen.add(e.getKey())) {
                        throw new Failed("page " + page + ": key " + show(e.getKey()) + " seen twice");
                    }
                    if (e.getKey().startsWith(prefix)) mine.put(e.getKey(), e.getValue());
                }
                if (elements.size() < count) break;
                if (response.getSeed() == null || response.getSeed().isEmpty()) {
                    throw new Failed("page " + page + " is full but its seed is empty");
                }
                seed = response.getSeed();
            }
            Set<String> missed = new TreeSet<>(wanted.keySet()), extra = new TreeSet<>(mine.keySet());
            missed.removeAll(mine.keySet());
            extra.removeAll(wanted.keySet());
            if (!missed.isEmpty()) {
                throw new Failed(missed.size() + " expected keys never seen, e.g. " + show(missed.iterator().next()));
            }
            if (!extra.isEmpty()) {
                throw new Failed(extra.size() + " keys under the prefix that the script does not expect, e.g. "
                    + show(extra.iterator().next()));
            }
            for (Map.Entry<String, String> e : wanted.entrySet()) {
                if (!e.getValue().equals(mine.get(e.getKey()))) {
                    throw new Failed("key " + show(e.getKey()) + ": value " + show(mine.get(e.getKey()))
                        + ", expected " + show(e.getValue()));
                }
            }
        }

        // --- script values and accessors ------------------------------------------------------

        /** A script value as these bindings carry it: text (which they send as UTF-8). */
        static String value(Object spec) throws Failed {
            Map<String, Object> m = obj(spec, "a value");
            if (m.size() == 1 && m.containsKey("text")) return str(m.get("text"), "a value's text");
            if (m.size() == 2 && m.containsKey("fill") && m.containsKey("count")) {
                String fill = str(m.get("fill"), "a value's fill");
                int count = i32(m.get("count"), "a value's count");
                if (fill.codePointCount(0, fill.length()) != 1 || count < 0) {
                    throw new Failed("bad script: bad fill value " + show(spec));
                }
                return fill.repeat(count);
            }
            if (m.containsKey("hex")) {
                throw new Failed("a hex value in a text script: the original IDL's values are `string`, which "
                    + "Java sends as UTF-8 text, so raw bytes cannot be sent (hex " + show(m.get("hex")) + ")");
            }
            throw new Failed("unknown value form " + show(spec));
        }

        static List<Element> elements(List<Object> args) throws Failed {
            arity(args, 1);
            List<Element> elements = new ArrayList<>();
            for (Object e : list(args.get(0), "the elements")) {
                Map<String, Object> m = obj(e, "an element");
                elements.add(new Element(str(m.get("bucket"), "an element's bucket"),
                                         str(m.get("key"), "an element's key"), value(m.get("value"))));
            }
            return elements;
        }

        static void arity(List<Object> args, int n) throws Failed {
            if (args.size() != n) throw new Failed("bad script: " + args.size() + " args, expected " + n);
        }

        static Map<String, Object> obj(Object v, String what) throws Failed {
            if (!(v instanceof Map)) throw new Failed("bad script: " + what + " is not an object: " + show(v));
            return cast(v);
        }

        static List<Object> list(Object v, String what) throws Failed {
            if (!(v instanceof List)) throw new Failed("bad script: " + what + " is not a list: " + show(v));
            return cast(v);
        }

        static String str(Object v, String what) throws Failed {
            if (!(v instanceof String)) throw new Failed("bad script: " + what + " is not a string: " + show(v));
            return (String) v;
        }

        static int i32(Object v, String what) throws Failed {
            if (!(v instanceof Long) || (Long) v != ((Long) v).intValue()) {
                throw new Failed("bad script: " + what + " is not a 32-bit integer: " + show(v));
            }
            return ((Long) v).intValue();
        }

        @SuppressWarnings("unchecked")
        static <T> T cast(Object v) { return (T) v; }

        static String message(Throwable e) {
            String m = e.getMessage();
            if (m == null && e.getCause() != null) m = e.getCause().toString();
            return m == null ? "(no message)" : m;
        }

        static String describe(ThrudocException e) {
            ExceptionType t = e.getType();
            String type = t == null ? "null (a value the IDL does not know)" : t + " (" + t.getValue() + ")";
            return "ThrudocException(type=" + type + ", what=" + show(e.getWhat()) + ")";
        }

        /** A short, readable rendering: strings quoted and escaped, long ones cut (2 MiB values). */
        static String show(Object v) {
            if (v instanceof String) {
                String s = (String) v;
                StringBuilder b = new StringBuilder("\"");
                int i = 0;
                for (; i < s.length() && b.length() < 60; i++) {
                    char ch = s.charAt(i);
                    if (ch == '"' || ch == '\\') b.append('\\').append(ch);
                    else if (ch < 0x20 || ch == 0x7f) b.append(String.format("\\u%04x", (int) ch));
                    else b.append(ch);
                }
                b.append('"');
                return i < s.length() ? b + "...(" + s.length() + " chars)" : b.toString();
            }
            String text;
            if (v instanceof List) {
                List<String> parts = new ArrayList<>();
                for (Object o : (List<?>) v) parts.add(show(o));
                text = parts.toString();
            } else if (v instanceof ScanResponse) {
                ScanResponse r = (ScanResponse) v;
                text = "ScanResponse(" + r.getElementsSize() + " elements, seed=" + show(r.getSeed()) + ")";
            } else {
                text = String.valueOf(v);  // script objects print as {key=value}, Thrift structs as Name(...)
            }
            return text.length() <= 200 ? text : text.substring(0, 200) + "...(" + text.length() + " chars)";
        }
    }

    // --- JSON -------------------------------------------------------------------------------

    /**
     * A small strict JSON parser (RFC 8259): objects become LinkedHashMap, arrays ArrayList,
     * integers Long (Double beyond a long), other numbers Double, true/false Boolean, null
     * null. An error is an IllegalArgumentException naming the offset.
     */
    static final class Json {
        private final String s;
        private int i;

        private Json(String s) { this.s = s; }

        static Object parse(String text) {
            Json p = new Json(text);
            Object v = p.value();
            p.space();
            if (p.i != text.length()) throw p.error("trailing characters");
            return v;
        }

        private IllegalArgumentException error(String message) {
            return new IllegalArgumentException(message + " at offset " + i);
        }

        private void space() {
            while (i < s.length() && " \t\n\r".indexOf(s.charAt(i)) >= 0) i++;
        }

        /** Skips white space and returns the next character, which is not consumed. */
        private char peek() {
            space();
            if (i >= s.length()) throw error("unexpected end of input");
            return s.charAt(i);
        }

        private void expect(char c) {
            if (peek() != c) throw error("expected '" + c + "'");
            i++;
        }

        private Object value() {
            char c = peek();
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++;
                if (peek() == '}') { i++; return m; }
                do {
                    if (peek() != '"') throw error("expected a string key");
                    String key = string();
                    expect(':');
                    m.put(key, value());
                } while (more('}'));
                return m;
            }
            if (c == '[') {
                List<Object> a = new ArrayList<>();
                i++;
                if (peek() == ']') { i++; return a; }
                do a.add(value()); while (more(']'));
                return a;
            }
            if (c == '"') return string();
            if (c == '-' || (c >= '0' && c <= '9')) return number();
            for (String word : new String[] {"true", "false", "null"}) {
                if (s.startsWith(word, i)) {
                    i += word.length();
                    return word.equals("null") ? null : Boolean.valueOf(word);
                }
            }
            throw error("unexpected character '" + c + "'");
        }

        /** After a member: true on ',' (another follows), false on the closing character. */
        private boolean more(char close) {
            char c = peek();
            i++;
            if (c == ',') return true;
            if (c == close) return false;
            i--;
            throw error("expected ',' or '" + close + "'");
        }

        private String string() {
            StringBuilder b = new StringBuilder();
            i++;  // the opening quote
            while (true) {
                int run = i;  // copy runs of plain characters at once: values reach 2 MiB
                while (i < s.length() && s.charAt(i) != '"' && s.charAt(i) != '\\' && s.charAt(i) >= 0x20) i++;
                b.append(s, run, i);
                if (i >= s.length()) throw error("unterminated string");
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c != '\\') { i--; throw error("unescaped control character in a string"); }
                if (i >= s.length()) throw error("unterminated string");
                char e = s.charAt(i++);
                switch (e) {
                    case '"': case '\\': case '/': b.append(e); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u': {
                        char u = hex4();
                        // A character beyond the BMP comes as a surrogate pair of escapes; Java
                        // strings are UTF-16, so the pair is kept as it is. A lone half is no
                        // text (it could not be sent as UTF-8), so it is an error.
                        if (Character.isHighSurrogate(u)) {
                            if (!s.startsWith("\\u", i)) throw error("unpaired surrogate escape");
                            i += 2;
                            char low = hex4();
                            if (!Character.isLowSurrogate(low)) throw error("unpaired surrogate escape");
                            b.append(u).append(low);
                        } else if (Character.isLowSurrogate(u)) {
                            throw error("unpaired surrogate escape");
                        } else {
                            b.append(u);
                        }
                        break;
                    }
                    default: i--; throw error("bad escape '\\" + e + "'");
                }
            }
        }

        private char hex4() {
            if (i + 4 > s.length()) throw error("short \\u escape");
            int v = 0;
            for (int k = 0; k < 4; k++, i++) {
                char c = s.charAt(i);
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                if (d < 0) throw error("bad hex digit in a \\u escape");
                v = v * 16 + d;
            }
            return (char) v;
        }

        private Object number() {
            int start = i;
            if (s.charAt(i) == '-') i++;
            if (i < s.length() && s.charAt(i) == '0') i++;  // no leading zeros: "01" is not JSON
            else digits();
            boolean integer = true;
            if (i < s.length() && s.charAt(i) == '.') {
                integer = false;
                i++;
                digits();
            }
            if (i < s.length() && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
                integer = false;
                i++;
                if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) i++;
                digits();
            }
            String text = s.substring(start, i);
            if (integer) {
                try {
                    return Long.parseLong(text);
                } catch (NumberFormatException e) {
                    // beyond a long: a double, as JSON has one number type
                }
            }
            return Double.parseDouble(text);
        }

        /** One or more ASCII digits. */
        private void digits() {
            int start = i;
            while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') i++;
            if (i == start) throw error("bad number");
        }
    }
}
