// Embedded queue benchmark: enqueue throughput (one producer; several producers, each with its
// own connection as separate processes would have) for synchronous=FULL and NORMAL, and the
// end-to-end overhead of a job (Send -> image stored by an `imagegen worker` process with the
// test model): p50/p99 one job at a time, and throughput of a batch through 2 workers.
// Built and run by bench/queue/run.sh; prints Markdown.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "queue/sqlite_queue.h"

namespace fs = std::filesystem;
using namespace imagegen;
using Clock = std::chrono::steady_clock;

namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::unique_ptr<SqliteQueue> Open(const std::string& path, bool full) {
  SqliteQueueOptions options;
  options.synchronous_full = full;
  auto queue = OpenSqliteQueue(path, options);
  if (!queue.ok()) {
    std::fprintf(stderr, "open: %s\n", queue.error().message.c_str());
    std::exit(1);
  }
  return std::move(queue.value());
}

double EnqueueRate(const std::string& dir, bool full, int producers, int per_producer) {
  std::string path =
      dir + "/enqueue-" + std::to_string(full) + "-" + std::to_string(producers) + ".db";
  fs::remove(path);
  { Open(path, full); }  // create the schema before the clock starts
  std::string body = R"({"prompt":"a red circle on a blue background","seed":1,"job_id":"x"})";
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&] {
      auto queue = Open(path, full);
      for (int i = 0; i < per_producer; ++i) {
        if (!queue->Send(body).ok()) std::abort();
      }
    });
  }
  for (auto& t : threads) t.join();
  return producers * per_producer / Seconds(Clock::now() - start);
}

pid_t StartWorker(const std::string& imagegen, const std::string& queue_url,
                  const std::string& store, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* out = std::freopen(log.c_str(), "w", stderr);
    (void)out;
    execl(imagegen.c_str(), imagegen.c_str(), "worker", "--queue", queue_url.c_str(), "--store",
          ("file://" + store).c_str(), "--model", "test", "--wait", "1", "--concurrency", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: queue_bench IMAGEGEN_BIN WORKDIR [N]\n");
    return 2;
  }
  std::string imagegen = argv[1], dir = argv[2];
  int n = argc > 3 ? std::atoi(argv[3]) : 2000;
  fs::create_directories(dir);

  std::printf("### Enqueue throughput (embedded queue, %d messages per run)\n\n", n);
  std::printf("| producers | synchronous=FULL (jobs/s) | synchronous=NORMAL (jobs/s) |\n");
  std::printf("|---|---|---|\n");
  for (int producers : {1, 4}) {
    double full = EnqueueRate(dir, true, producers, n / producers);
    double normal = EnqueueRate(dir, false, producers, n / producers);
    std::printf("| %d | %.0f | %.0f |\n", producers, full, normal);
    std::fflush(stdout);
  }

  // End to end: Send -> PNG in the store, one job in flight at a time (pure overhead), then a
  // batch through 2 workers.
  std::string db = dir + "/e2e.db", store = dir + "/images";
  fs::remove(db);
  fs::remove_all(store);
  auto queue = Open(db, true);
  std::string url = "sqlite://" + db;
  std::vector<pid_t> workers = {StartWorker(imagegen, url, store, dir + "/w1.log")};
  auto wait_for = [&](const std::string& job) {
    std::string png = store + "/" + job + ".png";
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!Exists(png)) {
      if (Clock::now() > deadline) {
        std::fprintf(stderr, "timed out waiting for %s\n", png.c_str());
        std::exit(1);
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  };
  // Warm-up: the worker has started and reached its first receive.
  queue->Send(R"({"prompt":"warm up","job_id":"warmup","width":64,"height":64})").value();
  wait_for("warmup");
  int sequential = std::min(n / 10, 200);
  std::vector<double> latencies;
  for (int i = 0; i < sequential; ++i) {
    std::string job = "seq-" + std::to_string(i);
    auto start = Clock::now();
    if (!queue
             ->Send(R"({"prompt":"a red circle","width":64,"height":64,"steps":4,"seed":1,)"
                    R"("job_id":")" +
                    job + "\"}")
             .ok()) {
      std::abort();
    }
    wait_for(job);
    latencies.push_back(Seconds(Clock::now() - start) * 1000);
  }
  workers.push_back(StartWorker(imagegen, url, store, dir + "/w2.log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int batch = std::min(n / 2, 1000);
  auto start = Clock::now();
  for (int i = 0; i < batch; ++i) {
    queue
        ->Send(R"({"prompt":"a red circle","width":64,"height":64,"steps":4,"seed":1,)"
               R"("job_id":"batch-)" +
               std::to_string(i) + "\"}")
        .value();
  }
  for (int i = 0; i < batch; ++i) wait_for("batch-" + std::to_string(i));
  double batch_s = Seconds(Clock::now() - start);
  for (pid_t pid : workers) kill(pid, SIGTERM);
  for (pid_t pid : workers) waitpid(pid, nullptr, 0);

  std::printf(
      "\n### End to end with the test model (Send -> PNG stored, file store, 64x64, 4 steps)\n\n");
  std::printf("| measure | value |\n|---|---|\n");
  std::printf("| one job at a time, p50 | %.1f ms |\n", Percentile(latencies, 0.5));
  std::printf("| one job at a time, p99 | %.1f ms |\n", Percentile(latencies, 0.99));
  std::printf("| one job at a time, jobs | %zu |\n", latencies.size());
  std::printf("| %d jobs through 2 workers (1 slot each) | %.1f s, %.0f jobs/s |\n", batch, batch_s,
              batch / batch_s);
  return 0;
}
