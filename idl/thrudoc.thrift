/*
 * Thrudoc wire API.
 *
 * Existing Thrudoc clients are generated from this shape: names, field ids and
 * types of everything that was in the original IDL are fixed. New things may
 * only be added (new methods, new enum values, new optional fields).
 *
 * `binary` and `string` are the same encoding on the wire; values are declared
 * `binary` so that generated clients hand them over as raw bytes.
 */

namespace cpp thrudoc
namespace py thrudoc
namespace rs thrudoc
namespace java org.thrudoc
namespace perl Thrudoc
namespace php Thrudoc
namespace rb Thrudoc

enum ExceptionType {
  /** Anything not covered below (the original's only kind besides NO_SUCH_KEY). */
  UNKNOWN = 1,
  /** get/getList of a key that is not stored. */
  NO_SUCH_KEY = 2,
  /** Added: a bucket, key, value, seed or count the server does not accept. Nothing was changed. */
  INVALID_ARGUMENT = 3,
  /** Added: the bucket is not known to this server. Nothing was changed. */
  NO_SUCH_BUCKET = 4,
  /** Added: the key's partition is read-only (its master is down); the write was not attempted. */
  READ_ONLY = 5,
  /** Added: the store could not be reached; the operation was not performed. Safe to retry. */
  UNAVAILABLE = 6,
  /** Added: the connection to the store died after a write was sent; it may or may not have happened. */
  OUTCOME_UNKNOWN = 7,
}

exception ThrudocException {
  1: string what,
  2: ExceptionType type = ExceptionType.UNKNOWN
}

struct Element {
  1: string bucket,
  2: string key,
  3: binary value
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

  void put(1: string bucket, 2: string key, 3: binary value) throws (1: ThrudocException e),

  binary get(1: string bucket, 2: string key) throws (1: ThrudocException e),

  void remove(1: string bucket, 2: string key) throws (1: ThrudocException e),

  /** Atomically appends value to the key's value; creates the key if it is absent. */
  void append(1: string bucket, 2: string key, 3: binary value) throws (1: ThrudocException e),

  /** Stores value under a new unique key (a UUID) and returns the key. */
  string putValue(1: string bucket, 2: binary value) throws (1: ThrudocException e),

  /**
   * Walks a whole bucket in pages. Seed "" starts a walk; pass the returned seed to continue.
   * A page with fewer than count elements is the last. Every key that exists for the whole
   * walk is returned exactly once. 1 <= count <= the server's MAX_SCAN_COUNT.
   */
  ScanResponse scan(1: string bucket, 2: string seed, 3: i32 count) throws (1: ThrudocException e),

  /** One result per element, in order; a success is an exception with an empty `what`. */
  list<ThrudocException> putList(1: list<Element> elements) throws (1: ThrudocException e),

  /** One result per element, in order; `ex.what` is empty where `element.value` holds the value. */
  list<ListResponse> getList(1: list<Element> elements) throws (1: ThrudocException e),

  list<ThrudocException> removeList(1: list<Element> elements) throws (1: ThrudocException e),

  /** Each element's key is ignored; the response element carries the new key. */
  list<ListResponse> putValueList(1: list<Element> elements) throws (1: ThrudocException e),

  /** Operator commands: echo, load_partitions, stats, status. */
  string admin(1: string op, 2: string data) throws (1: ThrudocException e),
}
