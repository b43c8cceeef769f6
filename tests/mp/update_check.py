"""Update key cases on MicroPython: signature checked (CPython signed the commands), bad
signature and bad hash refused with nothing staged, a good one staged, swapped, rolled back; then
the attacks on acceptance (replay, new id on an old signature, expired, another node's command,
downgrade) refused and a signed rollback taken, with what the node accepted kept on flash.

    micropython update_check.py DIR KEYHEX TARGET
    (DIR holds archive.spa, cmd.json and attacks.json: [[label, cmd, now, running, expected]],
    expected "accepted", "staged" (accepted, then staged) or the start of the refusal)"""

import json
import os
import sys
from binascii import unhexlify

from spnode.update import UpdateError, Updater, accept, staged

d = sys.argv[1]
key = unhexlify(sys.argv[2])
target = sys.argv[3]
with open(d + "/archive.spa", "rb") as f:
    archive = f.read()
with open(d + "/cmd.json") as f:
    cmd = json.loads(f.read())
root = d + "/flash"
os.mkdir(root)
os.mkdir(root + "/app")
with open(root + "/app/main.py", "w") as f:
    f.write("print('v1')\n")


def fetch(url, offset, length):
    return archive[offset : offset + length]


def refused(c, data, prefix):
    def bad_fetch(url, offset, length):
        return data[offset : offset + length]

    try:
        Updater(root, version="0.1.0").install(c, key, target, bad_fetch, chunk=512)
    except UpdateError as e:
        assert str(e).startswith(prefix), e
        assert "app.new" not in os.listdir(root)
        return
    raise AssertionError("accepted: " + prefix)


bad = dict(cmd)
bad["sig"] = "0" * 64
refused(bad, archive, "sig: signature does not match")
evil = bytearray(archive)
evil[-20] ^= 1
refused(cmd, bytes(evil), "sha256: download does not match")
up = Updater(root, version="0.1.0")
assert up.install(cmd, key, target, fetch, chunk=512) == "0.2.0"
assert Updater(root, version="0.1.0").boot() == "trial"
with open(root + "/app/main.py") as f:
    assert f.read() == "print('v2')\n"
modes = [Updater(root, version="0.1.0", max_trial_boots=1).boot() for _ in range(1)]
assert modes == ["rolled_back"], modes
with open(root + "/app/main.py") as f:
    assert f.read() == "print('v1')\n"

# acceptance, in order, against what is kept on flash (a fresh data dir: a node never updated)
data = d + "/data"
os.mkdir(data)
with open(d + "/attacks.json") as f:
    attacks = json.loads(f.read())
for label, c, now, running, expected in attacks:
    try:
        accept(c, key, target, now, running, data)
        got = "accepted"
    except UpdateError as e:
        got = str(e)
    if expected == "staged" and got == "accepted":
        staged(data, c["version"])
        got = "staged"
    assert got.startswith(expected), "%s: %s" % (label, got)
    print(label, "->", got)
print("OK")
