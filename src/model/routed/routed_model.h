// A router over several models behind one name. A request goes to the member it names (by the
// member's Name()), else to the member that knows the most of its prompt's words (the first
// member on a tie, and for prompts no member knows). The bundled default is one: the shapes
// model and the emoji model, each trained on its own world (README, "Models").
//
// Limits() are the first member's (what a request with no prompt yet is shown, e.g. A1111's
// /sdapi/v1/samplers); the pipeline validates each request against its member's own limits.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "model/image_model.h"

namespace imagegen {

// `members` must be non-empty, their names distinct and none equal to `name`; members are
// models, not routers (a member's own Serving() is not asked).
Result<std::unique_ptr<ImageModel>> MakeRoutedModel(
    std::string name, std::vector<std::unique_ptr<ImageModel>> members);

}  // namespace imagegen
