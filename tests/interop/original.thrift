/*
 * The original Thrudoc IDL, as clients in use today were generated from it: a fixture of the
 * interop tests, which generate clients from this file and run them against the server.
 *
 * Names, field ids and types are the original's and must not change. In particular:
 *   - `ExceptionType` has only UNKNOWN and NO_SUCH_KEY, and `ThrudocException` has no
 *     `code`;
 *   - `Element.value` and the `value` arguments are `string`, not `binary`.
 *
 * The earliest published revision of the IDL had no `append` and gave its `throws` clauses
 * no field id (`throws (1: ThrudocException e)`), so compilers number the exception field -1.
 * The server writes a thrown exception as field 1 and again as field -1, and the interop
 * test also runs clients generated from this file with the ids taken out of the `throws`
 * clauses, as that revision wrote them.
 *
 * Only the syntax was brought up to date, so that today's compiler (0.17) takes it: the
 * `php_namespace`, `perl_package` and `ruby_namespace` lines of the original are written
 * `namespace php|perl|rb`, the default of `type` is qualified (`ExceptionType.UNKNOWN`), and
 * a `namespace py` line keeps the Python module apart from the new IDL's. None of this
 * changes what goes on the wire.
 */

namespace cpp thrudoc
namespace php Thrudoc
namespace perl Thrudoc
namespace java thrudoc
namespace rb Thrudoc
namespace py thrudoc_original

enum ExceptionType {
  UNKNOWN = 1,
  NO_SUCH_KEY = 2
}

exception ThrudocException {
  1: string what
  2: ExceptionType type = ExceptionType.UNKNOWN
}

struct Element {
  1: string bucket,
  2: string key,
  3: string value
}

struct ScanResponse {
  1: list<Element> elements,
  2: string seed
}

struct ListResponse {
  1: Element element,
  2: ThrudocException ex
}

service Thrudoc {
  list<string> getBuckets() throws (1: ThrudocException e),

  void put(1: string bucket, 2: string key, 3: string value) throws (1: ThrudocException e),
  string get(1: string bucket, 2: string key) throws (1: ThrudocException e),
  void remove(1: string bucket, 2: string key) throws (1: ThrudocException e),
  void append(1: string bucket, 2: string key, 3: string value) throws (1: ThrudocException e),

  string putValue(1: string bucket, 2: string value) throws (1: ThrudocException e),

  ScanResponse scan(1: string bucket, 2: string seed, 3: i32 count) throws (1: ThrudocException e),

  list<ThrudocException> putList(1: list<Element> elements) throws (1: ThrudocException e),
  list<ListResponse> getList(1: list<Element> elements) throws (1: ThrudocException e),
  list<ThrudocException> removeList(1: list<Element> elements) throws (1: ThrudocException e),
  list<ListResponse> putValueList(1: list<Element> elements) throws (1: ThrudocException e),

  string admin(1: string op, 2: string data) throws (1: ThrudocException e)
}
