// The token bucket on a stepped clock: burst, the wait it names, refill, keys apart, and the
// bound on how many keys it remembers.
#include "http/rate_limit.h"

#include <gtest/gtest.h>

namespace imagegen {
namespace {

class RateLimiterTest : public ::testing::Test {
 protected:
  RateLimiter Make(double rate, int burst, size_t max_keys = 100) {
    RateLimitOptions options;
    options.rate_per_s = rate;
    options.burst = burst;
    options.max_keys = max_keys;
    options.now = [this] { return now_; };
    return RateLimiter(options);
  }
  void Advance(double seconds) {
    now_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }
  Clock::time_point now_ = Clock::now();
};

TEST_F(RateLimiterTest, BurstThenRefusedWithTheWaitUntilTheNextToken) {
  RateLimiter limiter = Make(0.5, 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take("a").allowed) << i;
  RateDecision refused = limiter.Take("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 2);  // one token at 0.5/s
  Advance(1.0);
  refused = limiter.Take("a");
  EXPECT_FALSE(refused.allowed);
  EXPECT_EQ(refused.retry_after_s, 1);  // half a token in hand
  Advance(1.0);
  EXPECT_TRUE(limiter.Take("a").allowed);
  EXPECT_FALSE(limiter.Take("a").allowed);
  Advance(3600);  // refill stops at the burst
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limiter.Take("a").allowed) << i;
  EXPECT_FALSE(limiter.Take("a").allowed);
}

TEST_F(RateLimiterTest, KeysHaveBucketsOfTheirOwn) {
  RateLimiter limiter = Make(1, 1);
  EXPECT_TRUE(limiter.Take("a").allowed);
  EXPECT_FALSE(limiter.Take("a").allowed);
  EXPECT_TRUE(limiter.Take("b").allowed);
}

TEST_F(RateLimiterTest, RemembersAtMostMaxKeysLeastRecentlyUsedFirst) {
  RateLimiter limiter = Make(1, 1, 2);
  EXPECT_TRUE(limiter.Take("a").allowed);
  EXPECT_TRUE(limiter.Take("b").allowed);
  EXPECT_FALSE(limiter.Take("a").allowed);  // a is now the most recent
  EXPECT_TRUE(limiter.Take("c").allowed);   // forgets b
  EXPECT_EQ(limiter.tracked_keys(), 2u);
  EXPECT_FALSE(limiter.Take("a").allowed);  // a was kept
  EXPECT_TRUE(limiter.Take("b").allowed);   // b starts again full
}

TEST_F(RateLimiterTest, OffWithoutARate) {
  RateLimiter limiter = Make(0, 0);
  EXPECT_FALSE(limiter.enabled());
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(limiter.Take("a").allowed);
  EXPECT_EQ(limiter.tracked_keys(), 0u);
}

}  // namespace
}  // namespace imagegen
