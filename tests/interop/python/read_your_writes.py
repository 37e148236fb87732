"""Read-your-writes across two Thrudoc servers with a write token (the README's example).

    PYTHONPATH=GEN python3 read_your_writes.py HOST_A PORT_A HOST_B PORT_B BUCKET KEY

GEN holds the bindings of idl/thrudoc.thrift (thrift --gen py). Writes KEY through server A,
takes A's write token, and reads KEY through server B with it, retrying while B answers BEHIND.
Prints the value read and how many reads B refused.
"""

import sys
import time

from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport

from thrudoc import Thrudoc
from thrudoc.ttypes import ErrorCode, ThrudocException


def connect(host, port):
    transport = TTransport.TFramedTransport(TSocket.TSocket(host, port))
    transport.open()
    return Thrudoc.Client(TBinaryProtocol.TBinaryProtocol(transport))


def read_your_write(a, b, bucket, key, value):
    a.put(bucket, key, value)
    token = a.writeToken()  # covers every write A acknowledged so far, the put above too
    refused = 0
    while True:
        try:
            return b.getAfter(bucket, key, token), refused
        except ThrudocException as e:
            if e.code != ErrorCode.BEHIND or refused == 20:
                raise
            refused += 1  # B's copy has not applied the write yet: nothing was read
            time.sleep(0.1)


if __name__ == "__main__":
    host_a, port_a, host_b, port_b, bucket, key = sys.argv[1:7]
    a, b = connect(host_a, int(port_a)), connect(host_b, int(port_b))
    value, refused = read_your_write(a, b, bucket, key, b"written through A")
    print(value.decode(), refused)
