// Time CV files the way PLUMED's PYTORCH_MODEL action uses them, from C++ (LibTorch).
//
// PLUMED loads the file with torch::jit::load (current PLUMED then applies eval, freeze and
// optimize_for_inference: --freeze here), runs forward once on zeros of shape (1, n_in) to
// count the outputs, and then at every MD step: copies its arguments into a float32 tensor of
// shape (1, n_in) that requires grad, runs forward, reads the outputs, and takes the gradient of
// each output j by its own torch::autograd::grad call (retain_graph = true).
//
// Several files are timed in one process, interleaved: each round times every file in turn (in
// argument order in even rounds, in reverse order in odd ones), so that a change of the
// machine's load reaches all of them alike.
//
// Usage: plumed_call [--freeze] FRAMES REPEATS ROUNDS MODEL OUT [MODEL OUT ...]
//   --freeze  load as current PLUMED does: eval, freeze (freeze_module + OptimizeFrozenGraph,
//             PLUMED's code path for LibTorch 2) and optimize_for_inference
//   FRAMES    text file: "n_frames n_in" then n_frames * n_in numbers (nm)
//   REPEATS   timed calls per round and model (cycling over the frames; 100 warm-up calls first)
//   ROUNDS    number of rounds
//   OUT       text file written with one line per frame: the n_out values, then the n_out * n_in
//             derivatives (output-major)
// Prints, for model i (0-based, in argument order), "n_out i <n>", then "us_per_call i <t_1>
// ... <t_ROUNDS>" (PLUMED's sequence, microseconds per call in each round) and
// "us_forward_backward i <t_1> ..." (forward and a single backward pass of the sum of the
// outputs, as a bias on all CVs needs); or "error i <message>" when the model fails (it is
// then left out of the timing).
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_graph_optimizations.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Result {
  std::vector<float> values;
  std::vector<float> derivatives;
};

struct Model {
  torch::jit::script::Module module;
  int64_t n_out = 0;
  bool ok = true;
  std::vector<double> plumed_us, forward_backward_us;
};

// torch::jit::load, and with `freeze` what current PLUMED does next (LibTorch >= 2).
torch::jit::script::Module load(const std::string& path, bool freeze) {
  torch::jit::script::Module module = torch::jit::load(path);
  if (!freeze) return module;
  module.eval();
  torch::jit::script::Module frozen = torch::jit::freeze_module(module, {});
  std::shared_ptr<torch::jit::Graph> graph = frozen.get_method("forward").graph();
  torch::jit::OptimizeFrozenGraph(graph, /*optimize_numerics=*/true);
  return torch::jit::optimize_for_inference(frozen);
}

// One MD step's worth of PLUMED work on one frame.
Result plumed_step(torch::jit::script::Module& model, const float* row, int64_t n_in,
                   int64_t n_out) {
  std::vector<float> arguments(row, row + n_in);
  torch::Tensor input = torch::tensor(arguments).view({1, n_in});
  input.set_requires_grad(true);
  torch::Tensor output = model.forward({input}).toTensor();
  Result result;
  const float* out = output.data_ptr<float>();
  result.values.assign(out, out + n_out);
  for (int64_t j = 0; j < n_out; ++j) {
    torch::Tensor seed = torch::ones({1}).expand({1, 1});
    auto gradient = torch::autograd::grad({output.slice(1, j, j + 1)}, {input}, {seed},
                                          /*retain_graph=*/true, /*create_graph=*/false);
    torch::Tensor g = gradient[0].contiguous();
    const float* d = g.data_ptr<float>();
    result.derivatives.insert(result.derivatives.end(), d, d + n_in);
  }
  return result;
}

// Forward and one backward pass (gradient of the sum of the outputs) on one frame.
void forward_backward(torch::jit::script::Module& model, const float* row, int64_t n_in) {
  std::vector<float> arguments(row, row + n_in);
  torch::Tensor input = torch::tensor(arguments).view({1, n_in});
  input.set_requires_grad(true);
  torch::Tensor output = model.forward({input}).toTensor();
  auto gradient = torch::autograd::grad({output.sum()}, {input});
  (void)gradient[0].data_ptr<float>();
}

template <typename Step>
double microseconds_per_call(Step step, int64_t repeats) {
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < repeats; ++i) step(i);
  std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / repeats;
}

std::vector<float> read_frames(const char* path, int64_t& n_frames, int64_t& n_in) {
  std::ifstream file(path);
  file >> n_frames >> n_in;
  std::vector<float> frames(n_frames > 0 && n_in > 0 ? n_frames * n_in : 0);
  for (auto& v : frames) file >> v;
  if (!file || n_frames < 1) frames.clear();
  return frames;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const bool freeze = !args.empty() && args[0] == "--freeze";
  if (freeze) args.erase(args.begin());
  if (args.size() < 5 || args.size() % 2 != 1) {
    std::cerr << "usage: plumed_call [--freeze] FRAMES REPEATS ROUNDS MODEL OUT [MODEL OUT ...]\n";
    return 2;
  }
  torch::set_num_threads(1);
  int64_t n_frames = 0, n_in = 0;
  const std::vector<float> frames = read_frames(args[0].c_str(), n_frames, n_in);
  if (frames.empty()) {
    std::cerr << "could not read " << args[0] << "\n";
    return 2;
  }
  const int64_t repeats = std::stoll(args[1]), rounds = std::stoll(args[2]);
  auto frame = [&](int64_t i) { return frames.data() + (i % n_frames) * n_in; };

  std::vector<Model> models((args.size() - 3) / 2);
  for (size_t m = 0; m < models.size(); ++m) {
    Model& model = models[m];
    try {
      model.module = load(args[3 + 2 * m], freeze);
      std::vector<float> zeros(n_in, 0.0f);
      model.n_out = model.module.forward({torch::tensor(zeros).view({1, n_in})})
                        .toTensor().numel();
      std::ofstream out(args[4 + 2 * m]);
      out << std::setprecision(9);
      for (int64_t f = 0; f < n_frames; ++f) {
        Result r = plumed_step(model.module, frame(f), n_in, model.n_out);
        for (float v : r.values) out << v << ' ';
        for (float d : r.derivatives) out << d << ' ';
        out << '\n';
      }
      for (int64_t i = 0; i < 100; ++i) plumed_step(model.module, frame(i), n_in, model.n_out);
      for (int64_t i = 0; i < 100; ++i) forward_backward(model.module, frame(i), n_in);
    } catch (const std::exception& e) {
      std::string message(e.what());
      std::cout << "error " << m << " " << message.substr(0, message.find('\n')) << "\n";
      model.ok = false;
    }
  }
  for (int64_t round = 0; round < rounds; ++round) {
    for (size_t k = 0; k < models.size(); ++k) {
      Model& model = models[round % 2 == 0 ? k : models.size() - 1 - k];
      if (!model.ok) continue;
      model.plumed_us.push_back(microseconds_per_call(
          [&](int64_t i) { plumed_step(model.module, frame(i), n_in, model.n_out); }, repeats));
      model.forward_backward_us.push_back(microseconds_per_call(
          [&](int64_t i) { forward_backward(model.module, frame(i), n_in); }, repeats));
    }
  }
  for (size_t m = 0; m < models.size(); ++m) {
    if (!models[m].ok) continue;
    std::cout << "n_out " << m << " " << models[m].n_out << "\nus_per_call " << m;
    for (double t : models[m].plumed_us) std::cout << " " << t;
    std::cout << "\nus_forward_backward " << m;
    for (double t : models[m].forward_backward_us) std::cout << " " << t;
    std::cout << "\n";
  }
  return 0;
}
