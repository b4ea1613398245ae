// A non-owning view of an event (SPEC §1): every field as a view into bytes someone else owns
// (a memtable's arena, a decoded WAL record, or an Event). The flush hands views to the
// segment writer so that no row is copied into std::strings on the way to disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>

#include "usagedb/event.h"

namespace usagedb {

// The dimension pairs of an event in the binary event record's encoding (docs/format.md,
// "Event record"): for each pair, key then value, each as a varint length then the bytes;
// keys strictly ascending by bytes. Iterates as (key, value) pairs of views, so code written
// against Event::dimensions (`for (const auto& [k, v] : dims)`, size(), empty()) reads both.
// REQUIRES: `encoded` is exactly `count` well-formed pairs (checked by whoever built it).
class DimensionsView {
 public:
  using value_type = std::pair<std::string_view, std::string_view>;

  DimensionsView() = default;
  DimensionsView(std::string_view encoded, uint32_t count) : encoded_(encoded), count_(count) {}

  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = DimensionsView::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    Iterator() = default;
    Iterator(const char* p, uint32_t left) : p_(p), left_(left) { Load(); }
    reference operator*() const { return pair_; }
    pointer operator->() const { return &pair_; }
    Iterator& operator++() {
      --left_;
      Load();
      return *this;
    }
    bool operator==(const Iterator& o) const { return left_ == o.left_; }

   private:
    static std::string_view Take(const char** p) {
      uint64_t n = 0;
      int shift = 0;
      for (;;) {
        const auto b = static_cast<unsigned char>(*(*p)++);
        n |= static_cast<uint64_t>(b & 0x7f) << shift;
        if (b < 0x80) break;
        shift += 7;
      }
      std::string_view s(*p, static_cast<size_t>(n));
      *p += n;
      return s;
    }
    void Load() {
      if (left_ == 0) return;
      pair_.first = Take(&p_);
      pair_.second = Take(&p_);
    }

    const char* p_ = nullptr;
    uint32_t left_ = 0;
    value_type pair_;
  };

  Iterator begin() const { return Iterator(encoded_.data(), count_); }
  Iterator end() const { return Iterator(); }
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // The encoded pairs: equal bytes <=> equal pair lists (the encoding is prefix-free).
  std::string_view encoded() const { return encoded_; }

 private:
  std::string_view encoded_;
  uint32_t count_ = 0;
};

// Field for field the same as Event, as views. Valid while the bytes it points into live.
struct EventView {
  std::string_view event_id;
  EventKind kind = EventKind::kUsage;
  bool has_correction_ref = false;
  std::string_view correction_original_event_id;
  std::string_view correction_reason;  // "" when absent
  std::string_view account_id;
  std::optional<std::string_view> subscription_id;
  std::string_view product_id;
  std::string_view meter_id;
  std::optional<std::string_view> model_id;
  int64_t timestamp_ms = 0;
  __int128 quantity = 0;
  std::string_view unit;
  std::string_view source;
  DimensionsView dimensions;
  int64_t ingested_at_ms = 0;
  uint64_t commit_seq = 0;
};

}  // namespace usagedb
