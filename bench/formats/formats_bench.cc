// Encode time and size per output format (PNG, JPEG, WebP) at 512x512, through the encoder
// interface the pipeline uses (image/codec.h), with the provenance a generated image carries.
//   formats_bench NAME=FILE.png [NAME=FILE.png ...] [--texture] [--reps N]
// Each input is decoded once; each (format, quality) is encoded and decoded N times (minimum and
// median reported), with the size and, for the lossy formats, the PSNR against the input
// (decoded by our readers).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "image/codec.h"
#include "image/png.h"

namespace {

using imagegen::Image;
using imagegen::ImageFormat;

double Psnr(const Image& a, const Image& b) {
  double se = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    double d = static_cast<double>(a.rgb[i]) - static_cast<double>(b.rgb[i]);
    se += d * d;
  }
  double mse = se / static_cast<double>(a.rgb.size());
  return mse == 0 ? INFINITY : 10 * std::log10(255.0 * 255.0 / mse);
}

// Photograph-like content the bundled models do not make: a smooth gradient with per-pixel
// noise (deterministic), so the lossy codecs have high-frequency detail to spend bits on.
Image Texture(int size) {
  Image image(size, size);
  uint32_t state = 12345;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      for (int c = 0; c < 3; ++c) {
        state = state * 1664525u + 1013904223u;
        int base = c == 0 ? x * 255 / size : c == 1 ? y * 255 / size : (x + y) * 127 / size;
        int noisy = base + static_cast<int>(state >> 27) - 16;
        image.Pixel(x, y)[c] = static_cast<uint8_t>(std::clamp(noisy, 0, 255));
      }
    }
  }
  return image;
}

struct Case {
  ImageFormat format;
  int quality;
  const char* label;
};

void Run(const std::string& name, const Image& image, int reps) {
  const imagegen::TextChunks provenance = {
      {"prompt", "a red circle on a blue background"},
      {"seed", "7"},
      {"parameters",
       "a red circle on a blue background\nSteps: 20, CFG scale: 2, Seed: 7, "
       "Size: 512x512, Model: local"},
      {"Software", "imagegen bench"}};
  const Case cases[] = {
      {ImageFormat::kPng, 0, "png"},        {ImageFormat::kJpeg, 75, "jpeg q75"},
      {ImageFormat::kJpeg, 90, "jpeg q90"}, {ImageFormat::kWebp, 75, "webp q75"},
      {ImageFormat::kWebp, 90, "webp q90"}, {ImageFormat::kWebp, 100, "webp lossless"}};
  for (const Case& c : cases) {
    std::vector<double> ms;
    std::string bytes;
    for (int r = 0; r < reps; ++r) {
      auto start = std::chrono::steady_clock::now();
      auto encoded = imagegen::EncodeImage(image, provenance, c.format, c.quality);
      ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
      if (!encoded.ok()) {
        std::fprintf(stderr, "%s: %s\n", c.label, encoded.error().message.c_str());
        return;
      }
      bytes = std::move(encoded->bytes);
    }
    std::sort(ms.begin(), ms.end());
    std::vector<double> decode_ms;
    auto decoded = imagegen::DecodeImage(bytes);
    for (int r = 0; r < reps; ++r) {
      auto start = std::chrono::steady_clock::now();
      decoded = imagegen::DecodeImage(bytes);
      decode_ms.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
    std::sort(decode_ms.begin(), decode_ms.end());
    double psnr = decoded.ok() ? Psnr(image, decoded->image) : NAN;
    char fidelity[32];
    if (std::isinf(psnr)) {
      std::snprintf(fidelity, sizeof fidelity, "lossless");
    } else {
      std::snprintf(fidelity, sizeof fidelity, "%.1f dB", psnr);
    }
    std::printf("| %s | %s | %.2f | %.2f | %.2f | %zu | %s |\n", name.c_str(), c.label, ms.front(),
                ms[ms.size() / 2], decode_ms.front(), bytes.size(), fidelity);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  std::vector<std::pair<std::string, std::string>> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--reps" && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--texture") {
      inputs.emplace_back("synthetic texture", "");
    } else if (auto eq = arg.find('='); eq != std::string::npos) {
      inputs.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: formats_bench NAME=FILE.png ... [--reps N]\n");
    return 2;
  }
  // The minimum is the cost without interference from other work; the median shows the spread.
  std::printf(
      "| input | format | encode ms (min of %d) | encode ms (median) | decode ms (min) | "
      "bytes | PSNR |\n",
      reps);
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  for (const auto& [name, path] : inputs) {
    if (path.empty()) {
      Run(name, Texture(512), reps);
      continue;
    }
    std::ifstream file(path, std::ios::binary);
    std::ostringstream bytes;
    bytes << file.rdbuf();
    auto image = imagegen::DecodePng(bytes.str(), nullptr);
    if (!image.ok()) {
      std::fprintf(stderr, "%s: %s\n", path.c_str(), image.error().message.c_str());
      return 1;
    }
    Run(name, image.value(), reps);
  }
  return 0;
}
