// The synthetic world of the bundled model: scenes of flat shapes on a flat background, their
// captions, the held-out split, a deterministic renderer, and a rule-based checker that reads an
// image back into a scene. Plain C++ (no LibTorch) so the dataset, the trainer and the evaluator
// share one definition of what "a red circle at the top" looks like.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "image/image.h"

namespace imagegen::synth {

enum class Colour { kRed, kGreen, kBlue, kYellow, kOrange, kPurple, kWhite, kBlack };
enum class Shape { kCircle, kSquare, kTriangle };
enum class Position { kLeft, kRight, kTop, kBottom, kCentre };
enum class Size { kSmall, kLarge };

constexpr int kNumColours = 8;
constexpr int kNumShapes = 3;
constexpr int kNumPositions = 5;
constexpr int kNumSizes = 2;
constexpr int kMaxCount = 3;
// The resolution the layout is designed for; Render scales it to other sizes.
constexpr int kNativeSize = 32;

struct Rgb {
  uint8_t r, g, b;
};

std::string_view ColourName(Colour c);
std::string_view ShapeName(Shape s);
std::string_view PositionName(Position p);
std::string_view SizeName(Size s);
Rgb ColourRgb(Colour c);

// One image's content. All shapes of a scene share colour, shape and size.
struct Scene {
  Colour colour = Colour::kRed;
  Shape shape = Shape::kCircle;
  int count = 1;  // 1..3
  Position position = Position::kCentre;
  Size size = Size::kLarge;
  Colour background = Colour::kBlue;

  bool operator==(const Scene&) const = default;
};

// Which attributes a caption states; unstated ones are free (drawn at random in training,
// not checked in evaluation).
struct Mentioned {
  bool size = true;
  bool position = true;
  bool background = true;
};

// A small deterministic PRNG (SplitMix64) so that data and noise are identical across
// platforms and between the C++ engine and the Python reference.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  // Uniform in [0, n).
  int Uniform(int n);
  // Uniform in [0, 1).
  double UniformReal();
  // Standard normal (Box-Muller, one value per call for simplicity of reproduction).
  double Normal();

 private:
  uint64_t state_;
};

// The combinations never rendered in training: (colour, shape) pairs. The evaluator's
// held-out prompts all use one of these pairs.
const std::vector<std::pair<Colour, Shape>>& HeldOutPairs();
bool IsHeldOut(const Scene& scene);
// Whether the renderer supports the scene (three large shapes do not fit at 32x32;
// the background differs from the shape colour).
bool IsValidScene(const Scene& scene);

// A random valid scene; held-out scenes are excluded unless `held_out` (then only held-out
// ones are drawn).
Scene RandomScene(Rng& rng, bool held_out);
// A random caption for `scene` in one of several phrasings, with some attributes left
// unstated (reported in `mentioned`). `full` states every attribute.
std::string RandomCaption(const Scene& scene, Rng& rng, bool full, Mentioned* mentioned);
// `caption` (from RandomCaption for `scene`) without the shapes' colour word: "two small
// triangles at the top on a blue background". Training on some such captions teaches the
// shape words apart from the colour words they were seen with.
std::string WithoutShapeColour(const std::string& caption, const Scene& scene);
// The canonical caption, e.g. "two small yellow squares at the top on a blue background".
std::string CanonicalCaption(const Scene& scene);

// Renders `scene` at size x size. `rng` supplies the layout jitter (position +-1.5 px, size
// +-1 px at 32x32); pass nullptr for the exact layout.
Image Render(const Scene& scene, int size, Rng* rng);

// The words the bundled model's tokenizer knows (every word any caption can contain).
const std::vector<std::string>& Vocabulary();

// What a caption asks for, read back by simple rules: the colour word before a shape word is
// the shape colour, a colour word near "background" (or after "on"/"against" when no shape
// follows) is the background. Fields the caption does not state are nullopt.
struct ParsedCaption {
  std::optional<Colour> colour;
  std::optional<Shape> shape;
  std::optional<int> count;
  std::optional<Position> position;
  std::optional<Size> size;
  std::optional<Colour> background;
};
ParsedCaption ParseCaption(std::string_view caption);

// What the checker reads from an image.
struct Reading {
  std::optional<Colour> colour;  // majority colour of the shapes; nullopt when none found
  std::optional<Shape> shape;    // majority shape
  int count = 0;                 // number of shape-sized blobs
  std::optional<Position> position;
  std::optional<Size> size;
  Colour background = Colour::kBlack;
};
// Reads any square image (resampled to the native grid's scale by pixel counting).
Reading Check(const Image& image);

// Per-attribute verdict of `reading` against what `expected` states.
struct Verdict {
  std::optional<bool> colour, shape, count, position, size, background;
  bool All() const;
};
Verdict Judge(const ParsedCaption& expected, const Reading& reading);

}  // namespace imagegen::synth
