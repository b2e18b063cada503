// AUTOMATIC1111's web API (/sdapi/v1/...), mapped onto the same pipeline, so that WebUI-style
// tools (webuiapi and the like) work unchanged against imagegen.
//
// Routes:
//   POST /sdapi/v1/txt2img   prompt, negative_prompt, seed (-1 or absent: random), steps,
//                            cfg_scale, width, height, batch_size x n_iter images, sampler_name
//                            (or the older sampler_index) with scheduler "karras", send_images.
//   POST /sdapi/v1/img2img   the same plus init_images (the first is edited), mask and
//                            denoising_strength (-> strength); a model that cannot edit answers
//                            422 naming init_images.
//   GET  /sdapi/v1/samplers  the model's samplers by A1111's names (or one "Default" entry
//                            where the model has no sampler choice)
//   GET  /sdapi/v1/sd-models the configured model
//   GET  /sdapi/v1/progress  the oldest in-flight generation of this door (below)
//   GET  /sdapi/v1/options   a minimal options object (the current checkpoint's name)
//
// Tolerance as A1111's own: members imagegen does not know are ignored (A1111's request models
// drop them too; clients send dozens), and members it knows but cannot honour (enable_hr,
// restore_faces, tiling, styles, subseed_strength, override_settings, scripts, extra
// init_images) are reported in info's "warnings". The response: images (base64 PNG unless the
// request asked otherwise, none when send_images is false), parameters (the request echoed with
// its defaults), and info, a JSON *string* with seed, all_seeds, infotexts (A1111's
// "parameters" text per image) and the rest of A1111's fields that apply.
//
// Errors: FastAPI's shape, as A1111 answers: an invalid field is 422
// {"detail": [{"loc": ["body", FIELD], "msg", "type": "value_error"}], ...}; anything else is
// the taxonomy's status with {"error": NAME, "detail": MESSAGE, "body": "", "errors": MESSAGE}.
// Both also carry imagegen's machine-readable "code" (the taxonomy's name).
//
// Progress: each txt2img/img2img call registers itself from admission to its answer; the model's
// on_progress and on_preview feed it. GET /progress reports state.job_count = generations in
// flight (0: idle, which is what clients wait for), and for the oldest of them sampling_step /
// sampling_steps as the model counts them (all images of the call), progress = their ratio,
// eta_relative from the elapsed time, and current_image its latest preview as base64 PNG (null
// when the model sends none, or with skip_current_image=true).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "http/router.h"
#include "pipeline/pipeline.h"

namespace imagegen {

// Admission plus the pipeline, as the Api runs every synchronous generation: `ctx` brings this
// door's callbacks; the runner sets its deadline and cancel flag from the HTTP request.
using AdmittedRunner = std::function<Result<GenerateResult>(
    const GenerateRequest& generate, const HttpRequest& request, GenerateContext ctx)>;

// A1111's sampler name for imagegen's ("euler_a" -> "Euler a"); the name itself where A1111 has
// none.
std::string A1111SamplerName(const std::string& imagegen_name);
// imagegen's sampler for an A1111 name or alias ("Euler a", "k_euler_a"; imagegen's own names
// are accepted too), with A1111's separate scheduler ("karras" turns "DPM++ 2M" into
// dpmpp_2m_karras; "" / "automatic" leave it). nullopt: no such sampler.
std::optional<std::string> SamplerFromA1111(const std::string& name, const std::string& scheduler);

// What a txt2img/img2img body asks for.
struct A1111Request {
  GenerateRequest request;
  int batch_size = 1, n_iter = 1;
  bool send_images = true;
  std::vector<std::string> warnings;  // members accepted but not honoured
  std::string sampler_label;          // the A1111 sampler name the client asked for, if any
};
// `limits`: the model's (batch_size x n_iter is checked against max_count here, so the error
// names A1111's fields).
Result<A1111Request> ParseA1111Request(const nlohmann::json& body, bool img2img,
                                       const ModelLimits& limits);

// A1111's "parameters" text of one image: the prompt, "Negative prompt: ..." when there is
// one, then "Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 1, Size: 512x512, Model: ..."
// (plus Denoising strength for edits, Batch size/pos for batches, Version).
std::string InfoText(const GenerateResult& result, const std::string& sampler, int64_t seed,
                     int batch_size, int batch_pos, std::optional<double> denoising_strength);

// An error in A1111's (FastAPI's) shape; see the header comment. `validation` false: an
// invalid request the HTTP front refused (framing, limits) keeps the taxonomy's status and the
// plain shape, as uvicorn answers those before FastAPI validates anything.
HttpResponse A1111ErrorResponse(const Error& error, bool validation = true);

// The in-flight generations of the door, for GET /sdapi/v1/progress. Thread-safe.
class ProgressBoard {
 public:
  struct Entry {
    std::string job;  // the request id
    Clock::time_point started;
    int step = 0, total = 0;
    std::optional<Preview> preview;
  };
  int Begin(const std::string& job);
  void Update(int id, int step, int total);
  void SetPreview(int id, const Preview& preview);
  void End(int id);
  // The oldest entry and how many there are; nullopt when idle.
  std::optional<Entry> Oldest(int* count) const;

 private:
  mutable std::mutex mu_;
  int next_id_ = 0;               // GUARDED_BY(mu_)
  std::map<int, Entry> entries_;  // GUARDED_BY(mu_); ids grow, so begin() is the oldest
};

class A1111Api {
 public:
  A1111Api(std::shared_ptr<Pipeline> pipeline, AdmittedRunner run);
  std::vector<RouteSpec> Routes();

 private:
  HttpResponse Generate(HttpRequest& request, bool img2img);
  HttpResponse Samplers(HttpRequest& request);
  HttpResponse SdModels(HttpRequest& request);
  HttpResponse Progress(HttpRequest& request);
  HttpResponse Options(HttpRequest& request);
  Result<GenerateResult> RunTracked(const GenerateRequest& generate, const HttpRequest& request);
  // The A1111 name of the sampler a result was made with.
  std::string SamplerUsed(const GenerateRequest& request) const;

  std::shared_ptr<Pipeline> pipeline_;
  AdmittedRunner run_;
  ProgressBoard progress_;
};

}  // namespace imagegen
