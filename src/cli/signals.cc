#include "cli/signals.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <thread>

namespace imagegen {
namespace {

std::mutex g_mu;
std::vector<std::function<void()>>* g_callbacks = new std::vector<std::function<void()>>();
int g_pipe[2] = {-1, -1};

// A real handler rather than a blocked mask + sigwait: shared libraries (OpenBLAS, LibTorch)
// start threads in their constructors, before main() could block anything, and a signal
// delivered to such a thread would take the default action and kill the process. A handler
// runs on whichever thread receives it; it only writes the signal number to a pipe, which is
// async-signal-safe, and the watcher thread does the rest.
void OnSignal(int signal_number) {
  unsigned char byte = static_cast<unsigned char>(signal_number);
  ssize_t ignored = ::write(g_pipe[1], &byte, 1);
  (void)ignored;
}

}  // namespace

void InstallSignalHandling() {
  if (::pipe(g_pipe) != 0) return;
  struct sigaction action {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  std::thread([] {
    unsigned char byte = 0;
    while (::read(g_pipe[0], &byte, 1) != 1) {
    }
    std::vector<std::function<void()>> callbacks;
    {
      std::lock_guard<std::mutex> lock(g_mu);
      callbacks = *g_callbacks;
    }
    if (callbacks.empty()) std::_Exit(128 + byte);
    for (auto& callback : callbacks) callback();
  }).detach();
}

void OnShutdown(std::function<void()> callback) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_callbacks->push_back(std::move(callback));
}

}  // namespace imagegen
