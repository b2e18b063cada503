#include "model/local/synth.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

namespace imagegen::synth {
namespace {

constexpr std::array<std::string_view, kNumColours> kColourNames = {
    "red", "green", "blue", "yellow", "orange", "purple", "white", "black"};
// Saturated, well separated colours: the checker classifies pixels by nearest colour.
constexpr std::array<Rgb, kNumColours> kColourRgb = {{{220, 30, 30},
                                                      {30, 170, 50},
                                                      {30, 70, 220},
                                                      {245, 220, 30},
                                                      {245, 140, 20},
                                                      {140, 40, 180},
                                                      {245, 245, 245},
                                                      {15, 15, 15}}};
constexpr std::array<std::string_view, kNumShapes> kShapeNames = {"circle", "square", "triangle"};
constexpr std::array<std::string_view, kNumShapes> kShapePlurals = {"circles", "squares",
                                                                    "triangles"};
constexpr std::array<std::string_view, kNumPositions> kPositionNames = {"left", "right", "top",
                                                                        "bottom", "centre"};
constexpr std::array<std::string_view, kNumSizes> kSizeNames = {"small", "large"};

// Layout in native (32x32) pixel units.
constexpr std::array<std::array<double, 2>, kNumPositions> kAnchors = {
    {{8, 16}, {24, 16}, {16, 8}, {16, 24}, {16, 16}}};
constexpr double kSmallSide = 8, kLargeSide = 14;
constexpr double kSmallSpacing = 11, kLargeSpacing = 17;

template <typename T>
T Pick(Rng& rng, std::initializer_list<T> options) {
  return *(options.begin() + rng.Uniform(static_cast<int>(options.size())));
}

std::string CountWord(int count, Rng* rng) {
  if (count == 1) return rng != nullptr && rng->Uniform(4) == 0 ? "one" : "a";
  return count == 2 ? "two" : "three";
}

std::string PositionPhrase(Position p, Rng* rng) {
  int v = rng != nullptr ? rng->Uniform(3) : 0;
  switch (p) {
    case Position::kLeft:
      return v == 0 ? "on the left" : v == 1 ? "at the left" : "on the left side";
    case Position::kRight:
      return v == 0 ? "on the right" : v == 1 ? "at the right" : "on the right side";
    case Position::kTop:
      return v == 0 ? "at the top" : v == 1 ? "near the top" : "at the top of the image";
    case Position::kBottom:
      return v == 0 ? "at the bottom" : v == 1 ? "near the bottom" : "at the bottom of the image";
    case Position::kCentre:
      return v == 0 ? "in the centre" : v == 1 ? "in the center" : "in the middle";
  }
  return "";
}

std::vector<std::string> Words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  for (char ch : text) {
    if (std::isalpha(static_cast<unsigned char>(ch))) {
      cur.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(ch))));
    } else if (!cur.empty()) {
      words.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(cur);
  return words;
}

int NearestColour(const uint8_t* px) {
  int best = 0;
  int best_d = 1 << 30;
  for (int c = 0; c < kNumColours; ++c) {
    int dr = px[0] - kColourRgb[c].r, dg = px[1] - kColourRgb[c].g, db = px[2] - kColourRgb[c].b;
    int d = dr * dr + dg * dg + db * db;
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

bool InsideShape(Shape shape, double x, double y, double cx, double cy, double side) {
  double r = side / 2;
  switch (shape) {
    case Shape::kCircle:
      return (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
    case Shape::kSquare:
      return std::abs(x - cx) <= r && std::abs(y - cy) <= r;
    case Shape::kTriangle:  // apex up, base at the bottom, height == side
      return y <= cy + r && y >= cy - r && std::abs(x - cx) <= (y - (cy - r)) / 2;
  }
  return false;
}

}  // namespace

std::string_view ColourName(Colour c) { return kColourNames[static_cast<int>(c)]; }
std::string_view ShapeName(Shape s) { return kShapeNames[static_cast<int>(s)]; }
std::string_view PositionName(Position p) { return kPositionNames[static_cast<int>(p)]; }
std::string_view SizeName(Size s) { return kSizeNames[static_cast<int>(s)]; }
Rgb ColourRgb(Colour c) { return kColourRgb[static_cast<int>(c)]; }

uint64_t Rng::Next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
int Rng::Uniform(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
double Rng::UniformReal() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
double Rng::Normal() {
  double u1 = UniformReal();
  double u2 = UniformReal();
  if (u1 < 1e-300) u1 = 1e-300;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

const std::vector<std::pair<Colour, Shape>>& HeldOutPairs() {
  static const std::vector<std::pair<Colour, Shape>> pairs = {
      {Colour::kGreen, Shape::kTriangle}, {Colour::kOrange, Shape::kSquare},
      {Colour::kPurple, Shape::kCircle},  {Colour::kYellow, Shape::kTriangle},
      {Colour::kWhite, Shape::kSquare},
  };
  return pairs;
}

bool IsHeldOut(const Scene& scene) {
  for (const auto& [c, s] : HeldOutPairs()) {
    if (scene.colour == c && scene.shape == s) return true;
  }
  return false;
}

bool IsValidScene(const Scene& scene) {
  return scene.count >= 1 && scene.count <= kMaxCount && scene.colour != scene.background &&
         !(scene.count == 3 && scene.size == Size::kLarge);
}

Scene RandomScene(Rng& rng, bool held_out) {
  for (;;) {
    Scene s;
    s.colour = static_cast<Colour>(rng.Uniform(kNumColours));
    s.shape = static_cast<Shape>(rng.Uniform(kNumShapes));
    s.count = 1 + rng.Uniform(kMaxCount);
    s.position = static_cast<Position>(rng.Uniform(kNumPositions));
    s.size = static_cast<Size>(rng.Uniform(kNumSizes));
    s.background = static_cast<Colour>(rng.Uniform(kNumColours));
    if (IsValidScene(s) && IsHeldOut(s) == held_out) return s;
  }
}

std::string RandomCaption(const Scene& scene, Rng& rng, bool full, Mentioned* mentioned) {
  Mentioned m;
  if (!full) {
    m.size = rng.Uniform(10) >= 3;
    m.position = rng.Uniform(10) >= 2;
    m.background = rng.Uniform(10) >= 2;
  }
  if (mentioned != nullptr) *mentioned = m;
  std::string count = CountWord(scene.count, &rng);
  std::string noun(scene.count == 1 ? ShapeName(scene.shape)
                                    : kShapePlurals[static_cast<int>(scene.shape)]);
  std::string size = m.size ? std::string(SizeName(scene.size)) + " " : "";
  if (m.size && rng.Uniform(4) == 0) size = scene.size == Size::kSmall ? "tiny " : "big ";
  std::string obj = count + " " + size + std::string(ColourName(scene.colour)) + " " + noun;
  std::string pos = m.position ? PositionPhrase(scene.position, &rng) : "";
  std::string bg(ColourName(scene.background));
  switch (rng.Uniform(m.background ? 5 : 2)) {
    case 0:
      return obj + (pos.empty() ? "" : " " + pos) +
             (m.background ? " on a " + bg + " background" : "");
    case 1:
      return (pos.empty() ? "" : pos + ", ") + obj +
             (m.background ? " on a " + bg + " background" : "");
    case 2:
      return "a " + bg + " background with " + obj + (pos.empty() ? "" : " " + pos);
    case 3:
      return obj + (pos.empty() ? "" : " " + pos) + " against a " + bg + " background";
    default:
      return std::string(scene.count == 1 ? "there is " : "there are ") + obj +
             (pos.empty() ? "" : " " + pos) + " on " + bg;
  }
}

std::string WithoutShapeColour(const std::string& caption, const Scene& scene) {
  std::string noun(scene.count == 1 ? ShapeName(scene.shape)
                                    : kShapePlurals[static_cast<int>(scene.shape)]);
  const std::string coloured = std::string(ColourName(scene.colour)) + " " + noun;
  const size_t at = caption.find(coloured);
  if (at == std::string::npos) return caption;
  return caption.substr(0, at) + caption.substr(at + coloured.size() - noun.size());
}

std::string CanonicalCaption(const Scene& scene) {
  std::string noun(scene.count == 1 ? ShapeName(scene.shape)
                                    : kShapePlurals[static_cast<int>(scene.shape)]);
  return CountWord(scene.count, nullptr) + " " + std::string(SizeName(scene.size)) + " " +
         std::string(ColourName(scene.colour)) + " " + noun + " " +
         PositionPhrase(scene.position, nullptr) + " on a " +
         std::string(ColourName(scene.background)) + " background";
}

Image Render(const Scene& scene, int size, Rng* rng) {
  Image img(size, size);
  double side = scene.size == Size::kSmall ? kSmallSide : kLargeSide;
  double spacing = scene.size == Size::kSmall ? kSmallSpacing : kLargeSpacing;
  double jx = 0, jy = 0;
  if (rng != nullptr) {
    side += scene.size == Size::kLarge ? rng->Uniform(3) - 2 : rng->Uniform(2);
    jx = (rng->UniformReal() * 2 - 1) * 1.5;
    jy = (rng->UniformReal() * 2 - 1) * 1.5;
  }
  auto [ax, ay] = kAnchors[static_cast<int>(scene.position)];
  // Left/right groups stack vertically; the others form a row.
  bool vertical = scene.position == Position::kLeft || scene.position == Position::kRight;
  std::vector<std::array<double, 2>> centres;
  for (int i = 0; i < scene.count; ++i) {
    double off = (i - (scene.count - 1) / 2.0) * spacing;
    centres.push_back({ax + (vertical ? 0 : off), ay + (vertical ? off : 0)});
  }
  // Keep the jittered group inside the frame.
  double lo = side / 2 + 0.5, hi = kNativeSize - side / 2 - 0.5;
  double min_x = 1e9, max_x = -1e9, min_y = 1e9, max_y = -1e9;
  for (auto& c : centres) {
    min_x = std::min(min_x, c[0]), max_x = std::max(max_x, c[0]);
    min_y = std::min(min_y, c[1]), max_y = std::max(max_y, c[1]);
  }
  jx = std::clamp(jx, std::min(0.0, lo - min_x), std::max(0.0, hi - max_x));
  jy = std::clamp(jy, std::min(0.0, lo - min_y), std::max(0.0, hi - max_y));
  Rgb bg = ColourRgb(scene.background), fg = ColourRgb(scene.colour);
  double scale = static_cast<double>(size) / kNativeSize;
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      double nx = (x + 0.5) / scale, ny = (y + 0.5) / scale;
      bool inside = false;
      for (auto& c : centres) {
        // Snap each shape's box to the native pixel grid: small circles then rasterise with
        // visibly cut corners instead of sometimes collapsing into squares.
        double sx = std::round(c[0] + jx - side / 2) + side / 2;
        double sy = std::round(c[1] + jy - side / 2) + side / 2;
        inside = inside || InsideShape(scene.shape, nx, ny, sx, sy, side);
      }
      Rgb col = inside ? fg : bg;
      uint8_t* p = img.Pixel(x, y);
      p[0] = col.r, p[1] = col.g, p[2] = col.b;
    }
  }
  return img;
}

const std::vector<std::string>& Vocabulary() {
  static const std::vector<std::string> vocab = [] {
    std::vector<std::string> v;
    for (auto n : kColourNames) v.emplace_back(n);
    for (auto n : kShapeNames) v.emplace_back(n);
    for (auto n : kShapePlurals) v.emplace_back(n);
    for (auto n : {"a",          "an",   "one",     "two",   "three",  "small",  "large",  "tiny",
                   "big",        "left", "right",   "top",   "bottom", "centre", "center", "middle",
                   "on",         "at",   "in",      "near",  "the",    "side",   "of",     "image",
                   "background", "with", "against", "there", "is",     "are"}) {
      v.emplace_back(n);
    }
    return v;
  }();
  return vocab;
}

ParsedCaption ParseCaption(std::string_view caption) {
  ParsedCaption p;
  std::vector<std::string> words = Words(caption);
  auto colour_of = [](const std::string& w) -> std::optional<Colour> {
    for (int c = 0; c < kNumColours; ++c) {
      if (w == kColourNames[c]) return static_cast<Colour>(c);
    }
    return std::nullopt;
  };
  auto shape_of = [](const std::string& w) -> std::optional<Shape> {
    for (int s = 0; s < kNumShapes; ++s) {
      if (w == kShapeNames[s] || w == kShapePlurals[s]) return static_cast<Shape>(s);
    }
    return std::nullopt;
  };
  std::optional<Colour> pending;  // last colour word not yet attached
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    if (auto c = colour_of(w)) {
      bool next_is_background = i + 1 < words.size() && words[i + 1] == "background";
      bool after_on = i > 0 && (words[i - 1] == "on" || words[i - 1] == "against");
      if (next_is_background || (after_on && p.shape.has_value())) {
        p.background = c;
      } else {
        pending = c;
      }
    } else if (auto s = shape_of(w)) {
      p.shape = s;
      if (pending) p.colour = pending, pending.reset();
      if (!p.count && w == kShapeNames[static_cast<int>(*s)]) p.count = 1;
    } else if (w == "two") {
      p.count = 2;
    } else if (w == "three") {
      p.count = 3;
    } else if (w == "small" || w == "tiny") {
      p.size = Size::kSmall;
    } else if (w == "large" || w == "big") {
      p.size = Size::kLarge;
    } else if (w == "left") {
      p.position = Position::kLeft;
    } else if (w == "right") {
      p.position = Position::kRight;
    } else if (w == "top") {
      p.position = Position::kTop;
    } else if (w == "bottom") {
      p.position = Position::kBottom;
    } else if (w == "centre" || w == "center" || w == "middle") {
      p.position = Position::kCentre;
    }
  }
  if (pending && !p.background && p.colour) p.background = pending;
  return p;
}

Reading Check(const Image& image) {
  Reading r;
  const int w = image.width, h = image.height;
  if (w <= 0 || h <= 0) return r;
  double scale = static_cast<double>(w) / kNativeSize;
  std::vector<int> cls(static_cast<size_t>(w) * h);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x)
      cls[static_cast<size_t>(y) * w + x] = NearestColour(image.Pixel(x, y));
  }
  // Background: the most common colour on the border.
  std::array<int, kNumColours> border{};
  for (int x = 0; x < w; ++x) ++border[cls[x]], ++border[cls[static_cast<size_t>(h - 1) * w + x]];
  for (int y = 0; y < h; ++y)
    ++border[cls[static_cast<size_t>(y) * w]], ++border[cls[static_cast<size_t>(y) * w + w - 1]];
  int bg = static_cast<int>(std::max_element(border.begin(), border.end()) - border.begin());
  r.background = static_cast<Colour>(bg);
  // The shape colour: the most common non-background colour. Pixels are then split into
  // shape and background by which of the two colours is nearer, so blended edges (a red
  // shape on yellow shows orange rims) fall on the right side of the midpoint.
  std::array<int, kNumColours> fg_votes{};
  for (int c : cls) {
    if (c != bg) ++fg_votes[c];
  }
  const int fg =
      static_cast<int>(std::max_element(fg_votes.begin(), fg_votes.end()) - fg_votes.begin());
  std::vector<uint8_t> is_fg(cls.size(), 0);
  if (fg_votes[fg] > 0) {
    const Rgb f = kColourRgb[fg], b = kColourRgb[bg];
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const uint8_t* p = image.Pixel(x, y);
        auto dist = [&](Rgb c) {
          int dr = p[0] - c.r, dg = p[1] - c.g, db = p[2] - c.b;
          return dr * dr + dg * dg + db * db;
        };
        is_fg[static_cast<size_t>(y) * w + x] = dist(f) < dist(b);
      }
    }
  }
  // Blobs: 4-connected components of shape pixels, ignoring specks.
  const double min_area = 16 * scale * scale;
  std::vector<int> label(cls.size(), -1);
  std::array<int, kNumColours> colour_votes{};
  std::array<int, kNumShapes> shape_votes{};
  double sum_x = 0, sum_y = 0, sum_side = 0, total = 0;
  std::vector<int> stack;
  for (int start = 0; start < w * h; ++start) {
    if (!is_fg[static_cast<size_t>(start)] || label[start] >= 0) continue;
    std::vector<int> pixels;
    stack.push_back(start);
    label[start] = start;
    while (!stack.empty()) {
      int i = stack.back();
      stack.pop_back();
      pixels.push_back(i);
      int x = i % w, y = i / w;
      const int nbr[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
      for (auto& n : nbr) {
        if (n[0] < 0 || n[1] < 0 || n[0] >= w || n[1] >= h) continue;
        int j = n[1] * w + n[0];
        if (is_fg[static_cast<size_t>(j)] && label[j] < 0) label[j] = start, stack.push_back(j);
      }
    }
    if (static_cast<double>(pixels.size()) < min_area) continue;
    ++r.count;
    int x0 = w, x1 = -1, y0 = h, y1 = -1;
    std::array<int, kNumColours> votes{};
    for (int i : pixels) {
      int x = i % w, y = i / w;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      ++votes[cls[i]];
      sum_x += x + 0.5, sum_y += y + 0.5, total += 1;
    }
    for (int c = 0; c < kNumColours; ++c) colour_votes[c] += votes[c];
    double bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    // Shape: the renderer's own circle, square and triangle fitted to the blob's bounding box;
    // the best intersection-over-union wins. Robust at 7 px, where simple ratios are not.
    double cx = (x0 + x1 + 1) / 2.0, cy = (y0 + y1 + 1) / 2.0;
    Shape s = Shape::kCircle;
    double best_iou = -1;
    for (int k = 0; k < kNumShapes; ++k) {
      int inter = 0, uni = 0;
      for (int y = std::max(0, y0 - 2); y <= std::min(h - 1, y1 + 2); ++y) {
        for (int x = std::max(0, x0 - 2); x <= std::min(w - 1, x1 + 2); ++x) {
          bool in_blob = label[static_cast<size_t>(y) * w + x] == start;
          // Template coordinates: the bounding box maps to [-1, 1] x [-1, 1].
          double u = (x + 0.5 - cx) / (bw / 2), v = (y + 0.5 - cy) / (bh / 2);
          bool in_tpl = InsideShape(static_cast<Shape>(k), u, v, 0, 0, 2.0);
          inter += in_blob && in_tpl;
          uni += in_blob || in_tpl;
        }
      }
      double iou = uni > 0 ? static_cast<double>(inter) / uni : 0;
      if (iou > best_iou) best_iou = iou, s = static_cast<Shape>(k);
    }
    ++shape_votes[static_cast<int>(s)];
    sum_side += std::max(bw, bh) / scale;
  }
  if (r.count == 0) return r;
  r.colour = static_cast<Colour>(std::max_element(colour_votes.begin(), colour_votes.end()) -
                                 colour_votes.begin());
  r.shape = static_cast<Shape>(std::max_element(shape_votes.begin(), shape_votes.end()) -
                               shape_votes.begin());
  r.size = sum_side / r.count < 11 ? Size::kSmall : Size::kLarge;
  double cx = sum_x / total / scale, cy = sum_y / total / scale;
  double best = 1e18;
  for (int p = 0; p < kNumPositions; ++p) {
    double d = (cx - kAnchors[p][0]) * (cx - kAnchors[p][0]) +
               (cy - kAnchors[p][1]) * (cy - kAnchors[p][1]);
    if (d < best) best = d, r.position = static_cast<Position>(p);
  }
  return r;
}

bool Verdict::All() const {
  for (const auto& v : {colour, shape, count, position, size, background}) {
    if (v.has_value() && !*v) return false;
  }
  return true;
}

Verdict Judge(const ParsedCaption& e, const Reading& r) {
  Verdict v;
  if (e.colour) v.colour = r.colour == e.colour;
  if (e.shape) v.shape = r.shape == e.shape;
  if (e.count) v.count = r.count == *e.count;
  if (e.position) v.position = r.position == e.position;
  if (e.size) v.size = r.size == e.size;
  if (e.background) v.background = r.background == *e.background;
  return v;
}

}  // namespace imagegen::synth
