"""Delta transfer of a large file: send what changed, not the whole file.

The side holding the old version describes it in fixed blocks (``signatures``): per block a
short strong digest and the block's first bytes as an anchor. The side holding the new
version walks it (``DeltaMaker``): where a block of the old file is expected it hashes the
bytes there; on a miss it looks ahead for the anchors of the next blocks with bytes.find
(C speed, no per-byte Python loop), confirms a candidate by its digest, and sends what lies
between as literal bytes. The result is a stream of operations, "copy these old blocks" and
"these bytes", in chunks, each with a digest of the bytes it makes (the SHA-256 of the
SHA-1s of its blocks and literal runs, which the walk computes anyway). The old side plays
them into a part file (files.write_delta), checks each chunk's digest on the bytes it wrote,
and renames the result into place only when every chunk matched: a digest collision or an
old file changed meanwhile costs a whole-file transfer, never a wrong file.

docs/sync-delta.md explains the choices and the bounds on the work done for files whose
anchors repeat everywhere. Standard library only; Python 3.8.
"""

import errno
import hashlib
import math
import os
import struct
import threading

from .errors import RequestFailed

MIN_BYTES = 1024 * 1024  # smaller files go whole: a round trip for signatures would not pay
DIGEST_BYTES = 8
SHA1_BYTES = 20
ANCHOR_BYTES = 4
RECORD_BYTES = DIGEST_BYTES + ANCHOR_BYTES
MIN_BLOCK = 8 * 1024
MAX_BLOCK = 256 * 1024
LOOKAHEAD_BLOCKS = 8  # the next blocks whose anchors are looked for after a miss
TRIES_PER_ANCHOR = 8  # candidates of one anchor confirmed by digest before giving up on it
SCAN_POSITIONS = 1024 * 1024  # per file: positions looked up one by one for a moved block
_READ_BYTES = 8 * 1024 * 1024
_SIGNING_THREADS = 4
_PER_THREAD_BYTES = 4 * 1024 * 1024  # less than this to hash: no thread of its own
_AHEAD_BYTES = 16 * 1024 * 1024  # the most hashed ahead of the walk at once
_LITERAL_OP_BYTES = 1024 * 1024
_COPY = struct.Struct(">cII")  # b"C", first block, number of blocks
_LITERAL = struct.Struct(">cI")  # b"L", length, then the bytes


class TooDifferent(Exception):
    """The delta would carry more literal bytes than allowed: send the file whole."""


class FileChanged(Exception):
    """The file read changed while it was read."""


def block_size_for(size):
    """The block size for an old file of ``size`` bytes: one changed byte costs a block of
    literal bytes, every block costs RECORD_BYTES of signature; sqrt(size * RECORD_BYTES)
    makes the two equal, and the total least."""
    block = int(math.sqrt(size * RECORD_BYTES))
    block = max(MIN_BLOCK, min(MAX_BLOCK, block))
    return (block + 1023) // 1024 * 1024


def digest_of(data):
    # SHA-1 for its speed where CPUs have instructions for it; collisions need not be
    # resisted (a false match is caught by the chunk's digest), only be rare.
    return hashlib.sha1(data).digest()[:DIGEST_BYTES]


def chunk_digest():
    """The hash of the SHA-1s of a chunk's pieces (see DeltaMaker), whose match lets it land."""
    return hashlib.sha256()


def signatures(fd, size, block):
    """The signature records of the first ``size`` bytes of ``fd`` in blocks of ``block``."""
    return signed(fd, size, block)[0]


def signed(fd, size, block):
    """(signature records, the full SHA-1s of the blocks one after another) of the first
    ``size`` bytes of ``fd`` in blocks of ``block``: the records for the other side, the
    SHA-1s for this side's rebuild (apply_ops), which then need not hash the blocks it
    copies again. A large file is read and hashed by a few threads at once."""
    ranges = _split(0, size, block, _workers_for(size))
    parts = _in_threads(lambda start, end: _hash_range(fd, start, end, block, True), ranges)
    sha1s = b"".join(part[0] for part in parts)
    anchors = b"".join(part[1] for part in parts)
    records = bytearray()
    for index in range(len(anchors) // ANCHOR_BYTES):
        records += sha1s[index * SHA1_BYTES:index * SHA1_BYTES + DIGEST_BYTES]
        records += anchors[index * ANCHOR_BYTES:(index + 1) * ANCHOR_BYTES]
    return bytes(records), sha1s


def block_hashes(fd, offset, count, block):
    """The full SHA-1s, one after another, of the ``count`` whole blocks of ``block`` bytes
    from ``offset`` of ``fd``, by a few threads when there are many."""
    end = offset + count * block
    ranges = _split(offset, end, block, _workers_for(end - offset))
    return b"".join(_in_threads(lambda start, stop: _hash_range(fd, start, stop, block, False)[0], ranges))


def _workers_for(size):
    return max(1, min(_SIGNING_THREADS, os.cpu_count() or 1, size // _PER_THREAD_BYTES))


def _split(start, end, block, workers):
    """``workers`` ranges of whole blocks covering ``start`` to ``end``."""
    count = (end - start + block - 1) // block
    per_worker = max(1, (count + workers - 1) // workers) * block
    return [(at, min(end, at + per_worker)) for at in range(start, end, per_worker)] or [(start, end)]


def _in_threads(work, ranges):
    """[work(start, end) for each range], each range but the first on a thread of its own
    (hashlib and pread let go of the GIL, so they run at once on several CPUs)."""
    if len(ranges) == 1:
        return [work(*ranges[0])]
    results = [None] * len(ranges)

    def run(index):
        try:
            results[index] = work(*ranges[index])
        except BaseException as exc:  # handed to the caller
            results[index] = exc

    threads = [threading.Thread(target=run, args=(index,)) for index in range(1, len(ranges))]
    for thread in threads:
        thread.start()
    run(0)
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _hash_range(fd, offset, end, block, with_anchors):
    """(full SHA-1s, anchors if asked) of the blocks of ``fd`` from ``offset`` to ``end``."""
    sha1s = bytearray()
    anchors = bytearray()
    per_read = max(1, _READ_BYTES // block) * block
    while offset < end:
        data = os.pread(fd, min(per_read, end - offset), offset)
        if not data:
            raise FileChanged("shorter than it was")
        view = memoryview(data)
        for start in range(0, len(data), block):
            piece = view[start:start + block]
            sha1s += hashlib.sha1(piece).digest()
            if with_anchors:
                anchors += bytes(piece[:ANCHOR_BYTES]).ljust(ANCHOR_BYTES, b"\0")
        offset += len(data)
    return bytes(sha1s), bytes(anchors)


# The signatures (records and full SHA-1s) of files signed or rebuilt here lately, by (version,
# block): a file still in that version is not read again to be signed, and its rebuild copies
# its blocks without hashing them. The helper runs as a daemon, so they last from one push
# to the next; the controller keeps them on disk (controller/sync_delta.py).
_KEPT_ENTRIES = 64
_KEPT_BYTES = 32 * 1024 * 1024
_kept = {}
_kept_lock = threading.Lock()


def remember(version, block, records, sha1s):
    """Keep the signatures of the file in ``version`` (see version_of in files.py): only of
    contents known to be exactly those of that version."""
    with _kept_lock:
        _kept.pop((version, block), None)
        _kept[(version, block)] = (records, sha1s)
        total = sum(len(records) + len(sha1s) for records, sha1s in _kept.values())
        while len(_kept) > _KEPT_ENTRIES or total > _KEPT_BYTES:
            oldest = _kept.pop(next(iter(_kept)))
            total -= len(oldest[0]) + len(oldest[1])


def remembered(version, block):
    """(records, SHA-1s) kept of the file in ``version``, or None."""
    with _kept_lock:
        return _kept.get((version, block))


def forget(version, block):
    with _kept_lock:
        _kept.pop((version, block), None)


# Signatures received for a file pulled in parts (see files.read_delta), by their tag: each
# part's request names them instead of sending them again.
_RECEIVED_KEPT = 8
_received = {}


def received_signatures(tag, records):
    """``records`` kept under ``tag``; with no records, those kept (RequestFailed if none)."""
    with _kept_lock:
        if records:
            _received.pop(tag, None)
            _received[tag] = records
            while len(_received) > _RECEIVED_KEPT:
                _received.pop(next(iter(_received)))
            return records
        kept = _received.get(tag)
    if kept is None:
        raise RequestFailed("invalid", "no signatures kept under %r" % tag)
    return kept


# What rebuilds in progress learnt of their new file's signatures (NewSignatures), by a key
# of the caller's (part file, old version, block): a push's chunks come in requests of their own.
_LEARNING_KEPT = 16
_learning = {}
_NOTHING = object()


def learning(key, learner=_NOTHING):
    """The learner kept under ``key`` (None if none); with ``learner``, keep that one instead
    (None: forget it)."""
    with _kept_lock:
        if learner is _NOTHING:
            return _learning.get(key)
        _learning.pop(key, None)
        if learner is not None:
            _learning[key] = learner
            while len(_learning) > _LEARNING_KEPT:  # left by transfers that never finished
                _learning.pop(next(iter(_learning)))
        return learner


class NewSignatures(object):
    """The signatures of a file being rebuilt (apply_ops), learnt where that costs no
    hashing of the file: a copied block that lands where a block of the new file starts
    brings its old record and SHA-1, literal bytes are hashed as they are anyway. Blocks
    that straddle operations are read back and hashed at the end (``finish``), when few."""

    def __init__(self, block, old_records, old_sha1s):
        self.block = block
        self._old_records = old_records
        self._old_sha1s = old_sha1s
        self._known = {}  # index of a block in the new file -> (record, SHA-1, its length)

    def copied(self, at, first, blocks, old_size):
        """Blocks ``first``... of the old file written at ``at`` of the new file."""
        block = self.block
        if at % block:
            return
        base = at // block
        for index in range(first, first + blocks):
            self._known[base + index - first] = (
                self._old_records[index * RECORD_BYTES:(index + 1) * RECORD_BYTES],
                self._old_sha1s[index * SHA1_BYTES:(index + 1) * SHA1_BYTES],
                min(block, old_size - index * block))

    def literal(self, at, data):
        """Literal bytes ``data`` written at ``at`` of the new file."""
        block = self.block
        for offset in range((-at) % block, len(data), block):
            piece = data[offset:offset + block]
            self._known[(at + offset) // block] = (*_signature_of(piece), len(piece))

    def finish(self, fd, size):
        """(records, SHA-1s) of the rebuilt file of ``size`` bytes open at ``fd``, or None
        when its block size is not the old one or too much was not learnt."""
        block = self.block
        if block_size_for(size) != block:
            return None
        count = (size + block - 1) // block
        unknown = [index for index in range(count)
                   if self._known.get(index, (b"", b"", -1))[2] != min(block, size - index * block)]
        if len(unknown) * block > max(_AHEAD_BYTES, size // 16):
            return None  # as dear as signing it when it is next needed
        for index in unknown:
            length = min(block, size - index * block)
            piece = os.pread(fd, length, index * block)
            if len(piece) != length:
                return None
            self._known[index] = (*_signature_of(piece), length)
        known = self._known
        return (b"".join(known[index][0] for index in range(count)),
                b"".join(known[index][1] for index in range(count)))


def _signature_of(piece):
    """(record, full SHA-1) of one block."""
    sha1 = hashlib.sha1(piece).digest()
    return sha1[:DIGEST_BYTES] + bytes(piece[:ANCHOR_BYTES]).ljust(ANCHOR_BYTES, b"\0"), sha1


class _Signatures(object):
    def __init__(self, records, block, old_size):
        if block < MIN_BLOCK or block > MAX_BLOCK or old_size < 0:
            raise RequestFailed("invalid", "bad block size %r" % block)
        count = (old_size + block - 1) // block
        if len(records) != count * RECORD_BYTES:
            raise RequestFailed("invalid", "%d signature bytes for %d blocks" % (len(records), count))
        self.block = block
        self.count = count
        self.old_size = old_size
        self.digests = [records[index:index + DIGEST_BYTES] for index in range(0, len(records), RECORD_BYTES)]
        self.anchors = [records[index + DIGEST_BYTES:index + RECORD_BYTES]
                        for index in range(0, len(records), RECORD_BYTES)]
        self.by_digest = {}
        self.by_anchor = {}
        for index in range(count - 1, -1, -1):  # the first of equal blocks wins
            self.by_digest[self.digests[index]] = index
            self.by_anchor[self.anchors[index]] = index

    def length_of(self, index):
        return min(self.block, self.old_size - index * self.block)

    def matching(self, digest, length):
        """The index of an old block of ``length`` bytes with that digest, or None."""
        index = self.by_digest.get(digest)
        if index is not None and self.length_of(index) == length:
            return index
        return None


class _Ops(object):
    """Operations being written: runs of copied blocks merged, literal bytes gathered;
    ``digest`` takes in the SHA-1 of each piece (a block, an operation's literal bytes)."""

    def __init__(self):
        self.digest = chunk_digest()
        self.out = bytearray()
        self.literal = bytearray()
        self.literal_total = 0
        self.covered = 0  # bytes of the new file the operations in ``out`` make
        self._copy = None  # [first, count, bytes, the blocks' SHA-1s]

    def copy(self, index, length, sha1):
        self._flush_literal()
        if self._copy is not None and self._copy[0] + self._copy[1] == index:
            self._copy[1] += 1
            self._copy[2] += length
            self._copy[3].append(sha1)
            return
        self._flush_copy()
        self._copy = [index, 1, length, [sha1]]

    def add_literal(self, data):
        self._flush_copy()
        self.literal += data
        self.literal_total += len(data)
        while len(self.literal) >= _LITERAL_OP_BYTES:
            self.out += _LITERAL.pack(b"L", _LITERAL_OP_BYTES)
            self.digest.update(hashlib.sha1(self.literal[:_LITERAL_OP_BYTES]).digest())
            self.out += self.literal[:_LITERAL_OP_BYTES]
            self.covered += _LITERAL_OP_BYTES
            del self.literal[:_LITERAL_OP_BYTES]

    def _flush_literal(self):
        if self.literal:
            self.out += _LITERAL.pack(b"L", len(self.literal))
            self.digest.update(hashlib.sha1(self.literal).digest())
            self.out += self.literal
            self.covered += len(self.literal)
            self.literal = bytearray()

    def _flush_copy(self):
        if self._copy is not None:
            self.out += _COPY.pack(b"C", self._copy[0], self._copy[1])
            self.covered += self._copy[2]
            for sha1 in self._copy[3]:  # taken in as the operation is, so a chunk's digest is its own
                self.digest.update(sha1)
            self._copy = None

    def flush(self):
        self._flush_literal()
        self._flush_copy()

    def take(self):
        """(operations, bytes of the new file they make, their digest) since the last take."""
        taken = (bytes(self.out), self.covered, self.digest.digest())
        self.out = bytearray()
        self.covered = 0
        self.digest = chunk_digest()
        return taken


class _Window(object):
    """A sliding view of the new file, each byte read (and hashed) once, in order."""

    def __init__(self, fd, size):
        self.fd = fd
        self.size = size
        self.start = 0
        self.data = b""
        self.view = memoryview(self.data)

    def cover(self, position, wanted):
        """Make ``data`` hold the file from ``position`` for ``wanted`` bytes (or to its end)."""
        end = min(self.size, position + wanted)
        have_end = self.start + len(self.data)
        if position >= self.start and end <= have_end:
            return
        if position >= have_end:  # the walk moved past what was read (hashed ahead): start afresh
            kept, have_end = b"", position
        else:
            kept = self.data[position - self.start:]
        self.start = position
        missing = max(end - have_end, _READ_BYTES)
        read = os.pread(self.fd, min(missing, self.size - have_end), have_end) if have_end < self.size else b""
        if have_end < end and not read:
            raise FileChanged("shorter than it was")
        self.data = kept + read
        self.view = memoryview(self.data)


class DeltaMaker(object):
    """The delta of the new file open at ``fd`` (``size`` bytes) against an old one described
    by ``records`` (see signatures). Iterate for chunks of operations, (operations, bytes
    of the new file they make, their digest), each about ``chunk_bytes`` or less, and (with ``chunk_covers``) covering
    about that many bytes of the new file at most. With a
    ``literal_budget``, TooDifferent once more literal bytes than that would be sent. With
    ``start`` and ``end``, only the bytes between them are walked (and made)."""

    def __init__(self, fd, size, records, block, old_size, chunk_bytes=4 * 1024 * 1024, literal_budget=None,
                 chunk_covers=None, start=0, end=None):
        self._signatures = _Signatures(records, block, old_size)
        self._window = _Window(fd, size)
        # The part of the file walked, start to end: where a part starts, the old file's
        # block at the same place is expected; a part ends exactly at its end.
        self._start = min(start, size)
        self._end = size if end is None else max(self._start, min(end, size))
        self._chunk_bytes = chunk_bytes
        self._chunk_covers = chunk_covers
        self._budget = literal_budget
        self._scan_left = SCAN_POSITIONS
        self._ahead = 2  # blocks to hash ahead at the next expected block (0: none, until a match)
        self.literal_bytes = 0

    def __iter__(self):
        signatures = self._signatures
        block = signatures.block
        search_span = max(4 * block, 1024 * 1024)
        window = self._window
        ops = _Ops()
        position = covered_until = self._start
        expected = min(position // block, signatures.count)
        while position < self._end:
            position, expected, sha1 = self._run_ahead(ops, position, expected)
            if sha1 is not None:  # else every block hashed ahead matched: on from where they end
                window.cover(position, search_span + 2 * block)
                relative = position - window.start
                piece = window.view[relative:relative + min(block, self._end - position)]
                sha1 = sha1 or hashlib.sha1(piece).digest()
                index = None
                if expected < signatures.count and signatures.length_of(expected) == len(piece) \
                        and sha1[:DIGEST_BYTES] == signatures.digests[expected]:
                    index = expected
                else:
                    index = signatures.matching(sha1[:DIGEST_BYTES], len(piece))
                if index is not None:
                    ops.copy(index, len(piece), sha1)
                    position += len(piece)
                    expected = index + 1
                    self._ahead = max(self._ahead, 2)
                else:
                    found, thorough = self._search(position, expected, search_span)
                    if found is not None:
                        target, expected = found
                        self._ahead = max(self._ahead, 2)
                    else:
                        target = position + (search_span if thorough else block)
                    target = min(target, self._end)
                    ops.add_literal(window.data[relative:relative + target - position])
                    position = target
                    if self._budget is not None and ops.literal_total > self._budget:
                        raise TooDifferent("more than %d literal bytes" % self._budget)
            if len(ops.out) >= self._chunk_bytes:
                yield ops.take()
            elif self._chunk_covers is not None and position - covered_until >= self._chunk_covers:
                ops.flush()  # so the receiver can rebuild this much while the walk goes on
                covered_until = position
                yield ops.take()
        ops.flush()
        if ops.out:
            yield ops.take()
        self.literal_bytes = ops.literal_total

    def _run_ahead(self, ops, position, expected):
        """Where the old file goes on as it did, hash the blocks expected next all at once (by
        a few threads for many) and copy those that match: (position, expected, sha1) after
        them. ``sha1`` is None when all matched, else the SHA-1 of the block at ``position``
        if it was taken (b"" if not): the caller looks at that position one by one.
        How many are hashed doubles while they match, so a file changed in a few places
        is hashed on every CPU, and a miss costs little."""
        signatures = self._signatures
        block = signatures.block
        count = min(self._ahead, signatures.count - expected, (self._end - position) // block,
                    max(1, _AHEAD_BYTES // block))
        if count > 0 and signatures.length_of(expected + count - 1) != block:
            count -= 1  # the old file's last block is short: looked at one by one
        if count < 2:
            return position, expected, b""
        sha1s = block_hashes(self._window.fd, position, count, block)
        digests = signatures.digests
        matched = 0
        while matched < count:
            sha1 = sha1s[matched * SHA1_BYTES:(matched + 1) * SHA1_BYTES]
            if sha1[:DIGEST_BYTES] != digests[expected]:
                break
            ops.copy(expected, block, sha1)
            expected += 1
            matched += 1
        position += matched * block
        if matched == count:
            self._ahead = min(2 * count, max(2, _AHEAD_BYTES // block))
            return position, expected, None
        self._ahead = 2 if matched else 0
        return position, expected, sha1

    def _search(self, position, expected, span):
        """((where, block index), thorough) of the nearest old block starting after
        ``position`` within ``span`` bytes; thorough is False when the caps on the work
        may have hidden one (low-entropy data), so the caller advances only a block."""
        signatures = self._signatures
        window = self._window
        data = window.data
        base = window.start
        low = position + 1
        high = min(self._end, position + span)
        best = None
        thorough = True
        tried = set()
        for index in range(expected, min(signatures.count, expected + LOOKAHEAD_BLOCKS)):
            anchor = signatures.anchors[index]
            if anchor in tried:
                continue
            tried.add(anchor)
            limit = best[0] if best is not None else high
            start = low
            for _ in range(TRIES_PER_ANCHOR):
                where = data.find(anchor, start - base, limit - base + ANCHOR_BYTES - 1)
                if where < 0:
                    break
                where += base
                if where >= limit:
                    break
                piece = data[where - base:where - base + signatures.length_of(index)]
                if digest_of(piece) == signatures.digests[index]:
                    best = (where, index)
                    break
                moved = signatures.matching(digest_of(piece), len(piece))
                if moved is not None:
                    best = (where, moved)
                    break
                start = where + 1
            else:
                thorough = False
        if best is not None:
            return best, True
        return self._scan(position, low, min(high, low + signatures.block)), thorough

    def _scan(self, position, low, high):
        """A block moved from elsewhere, looked up position by position (within a budget)."""
        signatures = self._signatures
        data = self._window.data
        base = self._window.start
        confirmed = 0
        for where in range(low, high):
            if self._scan_left <= 0 or confirmed >= TRIES_PER_ANCHOR:
                return None
            self._scan_left -= 1
            index = signatures.by_anchor.get(data[where - base:where - base + ANCHOR_BYTES])
            if index is None:
                continue
            confirmed += 1
            piece = data[where - base:where - base + signatures.length_of(index)]
            if digest_of(piece) == signatures.digests[index]:
                return where, index
        return None


def apply_ops(ops, old_fd, block, old_size, out_fd, old_sha1s=None, learn=None, at=0):
    """Play ``ops`` (see DeltaMaker): copied blocks from ``old_fd``, literal bytes as they
    are, written at ``out_fd``'s position; (bytes written, the digest of what they make).
    ``old_sha1s``: the full SHA-1s of the old file's blocks (see signed), taken from the
    version ``old_fd`` still has; copied blocks are then copied by the kernel and not
    hashed again. ``learn`` (a NewSignatures) takes in what is written, ``at`` being where
    ``out_fd``'s position is in the new file."""
    digest = chunk_digest()
    view = memoryview(ops)
    count = (old_size + block - 1) // block
    if old_sha1s is not None and len(old_sha1s) != count * SHA1_BYTES:
        old_sha1s = None
    written = 0
    at_op = 0
    while at_op < len(view):
        kind = bytes(view[at_op:at_op + 1])
        if kind == b"C" and at_op + _COPY.size <= len(view):
            _, first, blocks = _COPY.unpack(view[at_op:at_op + _COPY.size])
            at_op += _COPY.size
            if blocks < 1 or first + blocks > count:
                raise RequestFailed("invalid", "a delta copies blocks the old file does not have")
            offset = first * block
            end = min(old_size, (first + blocks) * block)
            if learn is not None:
                learn.copied(at + written, first, blocks, old_size)
            if old_sha1s is not None:
                digest.update(old_sha1s[first * SHA1_BYTES:(first + blocks) * SHA1_BYTES])
                _copy_range(old_fd, offset, end - offset, out_fd)
                written += end - offset
                continue
            per_read = max(1, _READ_BYTES // block) * block
            while offset < end:
                data = os.pread(old_fd, min(per_read, end - offset), offset)
                if len(data) != min(per_read, end - offset):
                    raise FileChanged("the old file became shorter")
                piece_view = memoryview(data)
                for start in range(0, len(data), block):
                    digest.update(hashlib.sha1(piece_view[start:start + block]).digest())
                _write_all(out_fd, data)
                offset += len(data)
                written += len(data)
        elif kind == b"L" and at_op + _LITERAL.size <= len(view):
            _, length = _LITERAL.unpack(view[at_op:at_op + _LITERAL.size])
            at_op += _LITERAL.size
            if at_op + length > len(view):
                raise RequestFailed("invalid", "a delta's literal bytes are cut short")
            literal = view[at_op:at_op + length]
            digest.update(hashlib.sha1(literal).digest())
            if learn is not None:
                learn.literal(at + written, literal)
            _write_all(out_fd, literal)
            at_op += length
            written += length
        else:
            raise RequestFailed("invalid", "a delta holds an unknown operation")
    return written, digest.digest()


def _copy_range(source_fd, offset, length, out_fd):
    """Copy ``length`` bytes of ``source_fd`` from ``offset`` to ``out_fd``'s position, in the
    kernel where it can (copy_file_range), else through a buffer."""
    copy = getattr(os, "copy_file_range", None)
    while length > 0:
        done = None
        if copy is not None:
            try:
                done = copy(source_fd, out_fd, min(length, 1 << 30), offset)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                copy = None  # not between these files: by hand from here on
        if done is None:
            data = os.pread(source_fd, min(length, _READ_BYTES), offset)
            _write_all(out_fd, data)
            done = len(data)
        if not done:
            raise FileChanged("the old file became shorter")
        offset += done
        length -= done


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
