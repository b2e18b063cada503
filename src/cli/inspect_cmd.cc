// imagegen inspect FILE: the provenance a PNG, JPEG or WebP carries, as JSON.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "image/codec.h"

namespace imagegen {
namespace {

int RunInspect(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return ReportError(Error::Invalid("file", "cannot open " + path));
  std::ostringstream bytes;
  bytes << file.rdbuf();
  auto decoded = DecodeImage(bytes.str());
  if (!decoded.ok()) {
    return ReportError(Error::Invalid("file", path + ": " + decoded.error().message));
  }
  const Image& image = decoded->image;
  nlohmann::json j = {{"format", ImageFormatName(decoded->format)},
                      {"width", image.width},
                      {"height", image.height},
                      {"alpha", image.HasAlpha()}};
  j["text"] = nlohmann::json::object();
  for (const auto& [key, value] : decoded->text) j["text"][key] = value;
  std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

}  // namespace

void AddInspectCommand(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Print the generation parameters stored in a PNG, JPEG or WebP image");
  cmd->add_option("file", *path, "PNG, JPEG or WebP file")->required();
  cmd->callback([path] { SetExitCode(RunInspect(*path)); });
}

}  // namespace imagegen
