// Time an exported CV file the way PLUMED's PYTORCH_MODEL action uses it, from C++ (LibTorch).
//
// PLUMED loads the file with torch::jit::load, runs forward once on zeros of shape (1, n_in) to
// count the outputs, and then at every MD step: copies its arguments into a float32 tensor of
// shape (1, n_in) that requires grad, runs forward, reads the outputs, and takes the gradient of
// each output j by its own torch::autograd::grad call (retain_graph = true).
//
// Usage: plumed_call MODEL FRAMES REPEATS OUT
//   FRAMES  text file: "n_frames n_in" then n_frames * n_in numbers (nm)
//   REPEATS timed calls (cycling over the frames, after 100 warm-up calls)
//   OUT     text file written with one line per frame: the n_out values, then the n_out * n_in
//           derivatives (output-major)
// Prints "us_per_call <microseconds>" (PLUMED's sequence), "us_forward_backward <microseconds>"
// (forward and a single backward pass, of the sum of the outputs, as a bias on all CVs needs) and
// "n_out <n>" on stdout.
#include <torch/script.h>
#include <torch/torch.h>

#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <vector>

namespace {

struct Result {
  std::vector<float> values;
  std::vector<float> derivatives;
};

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
    torch::Tensor g = gradient[0].unsqueeze(1).contiguous();
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
  for (int64_t i = 0; i < 100; ++i) step(i);
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < repeats; ++i) step(i);
  std::chrono::duration<double, std::micro> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / repeats;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: plumed_call MODEL FRAMES REPEATS OUT\n";
    return 2;
  }
  torch::set_num_threads(1);
  torch::jit::script::Module model = torch::jit::load(argv[1]);
  std::ifstream frames_file(argv[2]);
  int64_t n_frames = 0, n_in = 0;
  frames_file >> n_frames >> n_in;
  std::vector<float> frames(n_frames * n_in);
  for (auto& v : frames) frames_file >> v;
  if (!frames_file || n_frames < 1) {
    std::cerr << "could not read " << argv[2] << "\n";
    return 2;
  }
  const int64_t repeats = std::stoll(argv[3]);

  std::vector<float> zeros(n_in, 0.0f);
  const int64_t n_out = model.forward({torch::tensor(zeros).view({1, n_in})}).toTensor().numel();

  std::ofstream out(argv[4]);
  out << std::setprecision(9);
  for (int64_t f = 0; f < n_frames; ++f) {
    Result r = plumed_step(model, frames.data() + f * n_in, n_in, n_out);
    for (float v : r.values) out << v << ' ';
    for (float d : r.derivatives) out << d << ' ';
    out << '\n';
  }
  auto frame = [&](int64_t i) { return frames.data() + (i % n_frames) * n_in; };
  const double plumed = microseconds_per_call(
      [&](int64_t i) { plumed_step(model, frame(i), n_in, n_out); }, repeats);
  const double single = microseconds_per_call(
      [&](int64_t i) { forward_backward(model, frame(i), n_in); }, repeats);
  std::cout << "us_per_call " << plumed << "\n"
            << "us_forward_backward " << single << "\n"
            << "n_out " << n_out << "\n";
  return 0;
}
