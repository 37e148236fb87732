/*
 * Thrudoc wire API.
 *
 * Clients generated from the original Thrudoc IDL (tests/interop/original.thrift) keep
 * working against this server, so the rules of docs/DESIGN.md ("Wire compatibility") hold
 * for every change made here:
 *   - nothing of the original is renamed, renumbered or retyped;
 *   - only new methods and new optional fields are added (every Thrift library skips a
 *     field id it does not know);
 *   - a field an old client reads never carries a value the original did not define
 *     (strict libraries reject it: Ruby's generated code fails the whole reply, Java maps
 *     an unknown enum value to null).
 *
 * `binary` and `string` are the same encoding on the wire; values are declared `binary`
 * so that generated clients hand them over as raw bytes.
 */

namespace cpp thrudoc
namespace py thrudoc
namespace rs thrudoc
namespace java org.thrudoc
namespace perl Thrudoc
namespace php Thrudoc
namespace rb Thrudoc
namespace go thrudoc

/**
 * The original's two kinds, and the only values `ThrudocException.type` ever carries:
 * NO_SUCH_KEY for a key that is not stored, UNKNOWN for every other failure. The precise
 * kind is `ThrudocException.code`.
 */
enum ExceptionType {
  UNKNOWN = 1,
  NO_SUCH_KEY = 2,
}

/**
 * The precise kind of a failure, in `ThrudocException.code`. The field is an i32, not this
 * enum, so that a client built before a code was added still reads the reply; treat a code
 * you do not know as UNKNOWN. Codes are only ever added, never renumbered.
 */
enum ErrorCode {
  /** A failure of the server itself (a bug, an unexpected state): it may have happened. */
  UNKNOWN = 1,
  /** get/getList of a key that is not stored. */
  NO_SUCH_KEY = 2,
  /** A bucket, key, value, seed, count or op the server does not accept. Nothing changed. */
  INVALID_ARGUMENT = 3,
  /** The bucket is not known to this server. Nothing changed. */
  NO_SUCH_BUCKET = 4,
  /** The key's partition is read-only (its master is down); the write was not attempted. */
  READ_ONLY = 5,
  /** The store could not be reached; the operation was not performed. Safe to retry. */
  UNAVAILABLE = 6,
  /** The store's answer to a write was lost: it may or may not have happened. */
  OUTCOME_UNKNOWN = 7,
  /**
   * Added. A read of a partition whose master is down was refused: the master's sibling has
   * not applied writes the read must show (FAILOVER_READS = consistent), or the read's token
   * names writes that the host holding the partition has not applied. Nothing was read. Safe
   * to retry: it succeeds once the sibling catches up or the master is back.
   */
  BEHIND = 8,
}

/**
 * `what` names the kind first ("read-only: ...", "no such bucket: ..."), then what failed
 * (operation, bucket, partition, host) and whether it may have happened.
 *
 * In the batch methods' result lists a success is an exception with an empty `what` and no
 * `code`.
 */
exception ThrudocException {
  1: string what,
  2: ExceptionType type = ExceptionType.UNKNOWN,
  /** Added: an ErrorCode value. Absent on successes in result lists. */
  3: optional i32 code
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

  /**
   * Added. A token covering every write this server has acknowledged so far, to any client:
   * call it after a write, then pass the token to getAfter on any server to read at least that
   * write. An opaque string (today a MariaDB GTID list); "" on the embedded store.
   */
  string writeToken() throws (1: ThrudocException e),

  /**
   * Added. get, reflecting at least the writes `token` covers (from writeToken, of any
   * server). When the host that would answer has not applied them yet, the read waits up to
   * the server's FAILOVER_READ_WAIT_MS, then fails with BEHIND (nothing was read; retry).
   * A token that is not one is INVALID_ARGUMENT; "" is plain get.
   */
  binary getAfter(1: string bucket, 2: string key, 3: string token) throws (1: ThrudocException e),
}
