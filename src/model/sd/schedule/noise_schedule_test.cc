#include "model/sd/schedule/noise_schedule.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace imagegen::sd {
namespace {

TEST(NoiseSchedule, EulerLeadingSpacingWithStepsOffsetAsSd15) {
  auto table = EulerSchedule(NoiseScheduleConfig{}, 5, /*karras=*/false);
  ASSERT_TRUE(table.ok());
  EXPECT_EQ(table->timesteps, (std::vector<double>{801, 601, 401, 201, 1}));
  ASSERT_EQ(table->sigmas.size(), 6u);
  EXPECT_EQ(table->sigmas.back(), 0.0);
  EXPECT_TRUE(std::is_sorted(table->sigmas.rbegin(), table->sigmas.rend()));
  // Leading spacing scales the initial noise by sqrt(sigma_max^2 + 1).
  EXPECT_NEAR(table->init_noise_sigma, std::sqrt(table->sigmas.front() * table->sigmas.front() + 1),
              1e-6);
}

TEST(NoiseSchedule, TrailingSpacingStartsAtTheLastTrainingStepAsSdTurbo) {
  NoiseScheduleConfig config;
  config.spacing = TimestepSpacing::kTrailing;
  config.steps_offset = 0;
  auto one = EulerSchedule(config, 1, false);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->timesteps, (std::vector<double>{999}));
  EXPECT_NEAR(one->init_noise_sigma, one->sigmas.front(), 1e-6);
  auto ddim = DdimTimesteps(config, 4);
  ASSERT_TRUE(ddim.ok());
  EXPECT_EQ(ddim->timesteps, (std::vector<int64_t>{999, 749, 499, 249}));
  EXPECT_EQ(ddim->final_alpha_cumprod, ddim->alphas_cumprod.front());
}

TEST(NoiseSchedule, KarrasSigmasSpanTheTrainingRange) {
  auto table = DpmSolverMultistepSchedule(NoiseScheduleConfig{}, 20, /*karras=*/true);
  ASSERT_TRUE(table.ok());
  const std::vector<double> alphas = AlphasCumprod(NoiseScheduleConfig{});
  const double sigma_max = std::sqrt((1 - alphas.back()) / alphas.back());
  const double sigma_min = std::sqrt((1 - alphas.front()) / alphas.front());
  EXPECT_NEAR(table->sigmas.front(), sigma_max, 1e-4);
  EXPECT_NEAR(table->sigmas[19], sigma_min, 1e-6);
  EXPECT_EQ(table->timesteps.front(), 999);
  EXPECT_EQ(table->timesteps.back(), 0);
}

TEST(NoiseSchedule, RefusesStepCountsOutsideTheTrainingSteps) {
  for (int steps : {0, -1, 1001}) {
    auto table = EulerSchedule(NoiseScheduleConfig{}, steps, false);
    ASSERT_FALSE(table.ok());
    EXPECT_EQ(table.error().code, ErrorCode::kInvalidRequest);
    EXPECT_EQ(table.error().field, "steps");
  }
  EXPECT_FALSE(DdimTimesteps(NoiseScheduleConfig{}, 0).ok());
  EXPECT_FALSE(DpmSolverMultistepSchedule(NoiseScheduleConfig{}, 1001, true).ok());
}

}  // namespace
}  // namespace imagegen::sd
