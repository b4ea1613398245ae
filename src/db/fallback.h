// Manifest fallback (SPEC §4): when the newest manifest generation is unreadable, recovery
// loads the newest readable one and re-adopts, by origin, the files of the flushes the
// skipped generations had committed, so no acknowledged event is lost or counted twice.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "io/file_system.h"
#include "manifest/manifest.h"
#include "segment/segment.h"
#include "usagedb/status.h"

namespace usagedb {

// The manifest entry of a segment file from its footer.
SegmentMeta SegmentMetaFromInfo(uint64_t file_number, const SegmentInfo& info);

// Re-adopts orphan flushes on top of *state (the newest readable generation), in commit
// sequence order: starting right above state->flushed_sequence, a flush whose segments carry
// origin [flushed_sequence + 1, b] is adopted when every file its receipt names is present,
// readable and unreferenced (`referenced` = files of every readable retained generation):
// receipt.segment_count segments with that origin and together receipt.event_count rows, its
// dedupe run (holding event_count keys) and its conflict log (conflict_count entries, whole).
// Adoption stops at the first flush that is incomplete; nothing partial is adopted. Adopted
// files are appended to *state (flushed_sequence, last_sequence, last_ingested_at_ms and
// next_file_number advanced) and named in *adopted. Never deletes anything. Errors only for
// directory listing failures; unreadable orphans are simply not adopted.
Status AdoptOrphanFlushes(FileSystem* fs, const std::string& db_root,
                          const std::set<ManifestFileRef>& referenced, ManifestState* state,
                          std::vector<std::string>* adopted);

}  // namespace usagedb
