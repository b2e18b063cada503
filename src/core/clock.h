// Wall-clock time in epoch milliseconds: the one definition (records, queue timestamps, logs,
// EMF). Durations and deadlines use the steady `Clock` of core/context.h.
#pragma once

#include <cstdint>

namespace imagegen {

int64_t NowEpochMs();

}  // namespace imagegen
