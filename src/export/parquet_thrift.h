// Thrift compact-protocol (de)serialization of the Parquet metadata structures generated from
// parquet.thrift, with every Thrift exception caught and turned into a Status here.
#pragma once

#include <string>
#include <string_view>

#include "io/file_system.h"
#include "parquet_gen/parquet_types.h"
#include "usagedb/status.h"

namespace usagedb {
namespace parquet {

namespace pf = ::usagedb::parquet_format;

// Appends the compact-protocol encoding of `obj` to *out. Fails (Internal) only when Thrift
// rejects the object, e.g. a required field of a union left unset.
Status SerializeThrift(const pf::FileMetaData& obj, std::string* out);
Status SerializeThrift(const pf::PageHeader& obj, std::string* out);

// Decodes one object from the front of `in`; *consumed (optional) receives its encoded size.
// Untrusted bytes: malformed input is Corruption with `what` (e.g. the file name) in the
// message; string and container sizes are bounded by the input size.
Status DeserializeThrift(std::string_view in, std::string_view what, pf::FileMetaData* obj,
                         size_t* consumed = nullptr);
Status DeserializeThrift(std::string_view in, std::string_view what, pf::PageHeader* obj,
                         size_t* consumed = nullptr);

// Reads and decodes the footer of the Parquet file at `path`: checks the magic at both ends
// and the footer length. Any damage is Corruption naming the file.
Result<pf::FileMetaData> ReadParquetFooter(FileSystem* fs, const std::string& path);

}  // namespace parquet
}  // namespace usagedb
