// FaultInjectionFileSystem: an in-memory file system for crash tests that models the
// durability contract of file_system.h, as RocksDB's FaultInjectionTestFS does.
//
//   * A file's contents are durable only up to its last successful WritableFile::Sync()
//     (a Truncate or a NewWritableFile over an existing file is a content change too: it is
//     durable only after a later Sync() through a handle on that file).
//   * A directory entry change (create, rename, remove, link, mkdir, rmdir) is durable only
//     after a successful SyncDir() of the directory holding the entry. A rename between two
//     directories needs both synced; with only the target synced both names survive.
//   * An entry that survives keeps the node it names, so a directory whose own entry was never
//     synced vanishes with everything below it.
//
// Crash-sweep pattern (docs/parts/io.md):
//   run the workload on a fresh fs; N = fs.mutating_ops();
//   for k in 0..N-1: fresh fs; fs.CrashAfter(k); run until it fails; destroy the database
//   object; fs.DropUnsyncedData(); reopen and check every acknowledged event is present once.
//
// Thread safety: as MemFileSystem, every method is thread-safe.
#pragma once

#include <cstdint>

#include "io/mem_file_system.h"

namespace usagedb {

class FaultInjectionFileSystem : public MemFileSystem {
 public:
  FaultInjectionFileSystem() = default;

  // Power loss followed by a restart: every file reverts to its durable contents, every entry
  // change not yet made durable by SyncDir is undone (created names vanish, removed or
  // renamed-away names come back with their durable contents). Ends the "process": open
  // WritableFile/RandomAccessFile handles are invalidated (later calls fail with IOError,
  // Close included), locks are released, and a CrashAfter crash (scheduled or happened) is
  // cleared so the next "process" can run. FailNth rules and the space limit stay.
  // REQUIRES: the users of the old "process" no longer call the file system directly (destroy
  // the database object first): calls through the file system itself are not invalidated.
  using MemFileSystem::DropUnsyncedData;
  // DropUnsyncedDataOutOfOrder(seed, block): as DropUnsyncedData, but an OS crash in the
  // middle of writeback: each file written since its last sync (appended to, or overwritten
  // through NewOverwritingFile) keeps, from its first changed byte on, a random subset of its
  // unsynced blocks (`block` bytes at absolute boundaries: 4096 for pages, 512 for sectors of
  // a page torn in flight); each other block reads back as it was at the last sync (zeros past
  // the synced size: holes), and a grown file's size is either the full written size or ends
  // after the last kept block. Later blocks can thus survive while earlier ones are lost, as
  // writeback does not follow write order.
  // Files that shrank and directories revert as in DropUnsyncedData. Deterministic for a seed.
  using MemFileSystem::DropUnsyncedDataOutOfOrder;

  // A process crash (kill -9) without power loss: like DropUnsyncedData, but every byte
  // written so far survives, synced or not (the page cache keeps it).
  using MemFileSystem::Reopen;

  // Marks the current state durable (every file synced, every directory synced). For test
  // setup: "the disk as it was before the test started".
  using MemFileSystem::MakeAllDurable;

  // Number of mutating operations attempted so far, whatever their outcome: NewWritableFile,
  // NewAppendableFile, Append, Sync, Close, CreateDir, RemoveDir, RemoveFile, Rename,
  // LinkFile, Truncate, SyncDir. Reads, ListDir, FileExists, FileSize and LockFile are not
  // counted. Never reset.
  using MemFileSystem::mutating_ops;

  // After k more mutating operations (counted as above), every further mutating operation
  // fails with IOError "injected crash (...)" and has no effect, until DropUnsyncedData(),
  // Reopen() or ResetFaults(). k = 0 fails the very next one. Reads keep working.
  using MemFileSystem::CrashAfter;
  // True once a CrashAfter crash has happened (and not been cleared).
  using MemFileSystem::crashed;

  // Makes only the n-th (1-based, counted from this call) future operation of `kind` fail
  // once with IOError "injected fault (...)"; kAny counts every mutating operation. Later
  // operations succeed. Several rules may be pending at once. n < 1 is treated as 1.
  // A failed operation has no effect, except Append with set_partial_append(true), which
  // writes the first half of its data first (a short write).
  using MemFileSystem::FailNth;
  // Default false. Also governs the disk-full case below.
  using MemFileSystem::set_partial_append;

  // The total size of all files (each hard-linked file counted once) may not exceed `bytes`:
  // an Append that would go beyond fails with IOError "<path>: No space left on device"
  // (writing what still fits first when partial appends are on). Truncate may still extend.
  using MemFileSystem::SetSpaceLimit;

  // Clears every injected fault: crash, FailNth rules, partial appends, space limit.
  using MemFileSystem::ResetFaults;

  // Current total size of all files, as SetSpaceLimit counts it.
  using MemFileSystem::TotalFileBytes;
};

}  // namespace usagedb
