// Wall-clock time in epoch milliseconds: the one definition (records, queue timestamps, logs,
// EMF). Durations and deadlines use the steady `Clock` of core/context.h.
#pragma once

#include <cstdint>
#include <functional>

namespace imagegen {

int64_t NowEpochMs();

// The wall clock as a seam: whatever stamps or expires records takes one, and tests give it a
// fixed or stepping clock instead of sleeping. Empty means NowEpochMs.
using EpochClock = std::function<int64_t()>;

}  // namespace imagegen
