// A Python-free program that runs a TorchScript rnnfast model: the C++ recipe of
// docs/integrations.md.
//
//   run_scripted [--no-library] <librnnfast: rnnfast/_C*.so> <model.pt> <batch> <seq_len> <vocab>
//
// It dlopens the rnnfast library (its static registrations add the rnnfast ops to the
// dispatcher), loads the model with torch::jit::load, runs it on tokens (i * 7 + 3) % vocab, and
// prints the outputs of two batches in a row (the second shows the carried state) one number a
// line. --no-library skips the dlopen, to show that the load then fails.
#include <dlfcn.h>
#include <torch/script.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

int main(int argc, char** argv) {
  int arg = 1;
  const bool load_library = !(argc > 1 && std::strcmp(argv[1], "--no-library") == 0);
  if (!load_library) ++arg;
  if (argc - arg != 5) {
    std::fprintf(stderr, "usage: %s [--no-library] LIBRARY MODEL BATCH SEQ_LEN VOCAB\n", argv[0]);
    return 2;
  }
  const char* library = argv[arg];
  const char* model_path = argv[arg + 1];
  const int64_t B = std::atoll(argv[arg + 2]), T = std::atoll(argv[arg + 3]),
                V = std::atoll(argv[arg + 4]);

  if (load_library && dlopen(library, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    std::fprintf(stderr, "dlopen failed: %s\n", dlerror());
    return 1;
  }
  torch::jit::Module model;
  try {
    model = torch::jit::load(model_path);
  } catch (const std::exception& e) {  // c10::Error, or torch::jit::ErrorReport for an unknown op
    std::fprintf(stderr, "torch::jit::load failed: %s\n", e.what());
    return 3;
  }
  model.eval();
  torch::NoGradGuard no_grad;
  const auto tokens = (torch::arange(B * T, torch::kLong) * 7 + 3).remainder(V).reshape({B, T});
  std::cout.precision(9);
  for (int step = 0; step < 2; ++step) {
    const auto out = model.forward({tokens}).toTensor().contiguous();
    const float* p = out.data_ptr<float>();
    for (int64_t i = 0; i < out.numel(); ++i) std::cout << p[i] << "\n";
  }
  return 0;
}
