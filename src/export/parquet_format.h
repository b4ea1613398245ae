// Constants of usageDb's Parquet export (docs/parts/parquet.md; SPEC §7). The physical layout
// is the Apache Parquet format; this header only fixes the choices usageDb makes inside it.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace usagedb {
namespace parquet {

// "PAR1" opens and closes every Parquet file.
constexpr std::string_view kMagic = "PAR1";
// FileMetaData.version. The format asks writers to write 1 (readers accept 1 and 2).
constexpr int32_t kFormatVersion = 1;
// Name of the schema root element.
constexpr std::string_view kSchemaRootName = "schema";
// DECIMAL(38,0) stored as FIXED_LEN_BYTE_ARRAY of this many bytes, big-endian two's complement.
constexpr int32_t kDecimalBytes = 16;
constexpr int32_t kDecimalPrecision = 38;
constexpr int32_t kDecimalScale = 0;

enum class PhysicalKind : uint8_t {
  kString = 0,   // BYTE_ARRAY, LogicalType STRING + ConvertedType UTF8
  kInt64 = 1,    // INT64, no annotation
  kDecimal = 2,  // FIXED_LEN_BYTE_ARRAY(16), LogicalType DECIMAL(38,0) + ConvertedType DECIMAL
};

struct ColumnSpec {
  std::string_view name;
  PhysicalKind kind;
  bool optional;    // OPTIONAL (definition levels, max level 1) vs REQUIRED
  bool dictionary;  // try dictionary encoding first (falls back to PLAIN when it grows too big)
};

// The export schema of SPEC §7, in column order. Changing it changes the export contract.
constexpr int kNumColumns = 15;
constexpr std::array<ColumnSpec, kNumColumns> kColumns = {{
    {"event_id", PhysicalKind::kString, false, false},
    {"kind", PhysicalKind::kString, false, true},
    {"correction_original_event_id", PhysicalKind::kString, true, false},
    {"correction_reason", PhysicalKind::kString, true, true},
    {"account_id", PhysicalKind::kString, false, true},
    {"subscription_id", PhysicalKind::kString, true, true},
    {"product_id", PhysicalKind::kString, false, true},
    {"meter_id", PhysicalKind::kString, false, true},
    {"model_id", PhysicalKind::kString, true, true},
    {"timestamp_ms", PhysicalKind::kInt64, false, false},
    {"quantity", PhysicalKind::kDecimal, false, false},
    {"unit", PhysicalKind::kString, false, true},
    {"source", PhysicalKind::kString, false, true},
    {"dimensions_canonical", PhysicalKind::kString, false, true},
    {"ingested_at_ms", PhysicalKind::kInt64, false, false},
}};

// Column indexes, for readability at call sites.
enum ColumnIndex : int {
  kColEventId = 0,
  kColKind,
  kColCorrectionOriginalEventId,
  kColCorrectionReason,
  kColAccountId,
  kColSubscriptionId,
  kColProductId,
  kColMeterId,
  kColModelId,
  kColTimestampMs,
  kColQuantity,
  kColUnit,
  kColSource,
  kColDimensionsCanonical,
  kColIngestedAtMs,
};

}  // namespace parquet
}  // namespace usagedb
