// zstd compression (engine/checkpoint/compression.h) and SHA-256 (manifest.h).
#include "engine/checkpoint/compression.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/checkpoint/manifest.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;
using df::test::TempDir;

std::string sample(size_t n, uint32_t seed) {
  // Half random, half repetitive: compressible but not trivially.
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i)
    s[i] = (i / 4096) % 2 ? static_cast<char>(rng()) : "abcdefgh"[i % 8];
  return s;
}

size_t peak_rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

TEST(Compression, BytesRoundTrip) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{3} << 20}) {
    std::string data = sample(n, static_cast<uint32_t>(n));
    auto z = compress_bytes(data);
    ASSERT_TRUE(z.ok()) << z.status().to_string();
    auto back = decompress_bytes(*z);
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(*back, data) << n;
  }
  std::string repetitive(1 << 20, 'q');
  EXPECT_LT(compress_bytes(repetitive)->size(), 1000u);
}

TEST(Compression, CorruptBytesAreDataErrors) {
  std::string data = sample(200000, 3);
  std::string z = *compress_bytes(data);

  std::string flipped = z;
  flipped[flipped.size() / 2] ^= 0x55;
  auto a = decompress_bytes(flipped);
  EXPECT_EQ(a.status().code(), StatusCode::kDataError);
  EXPECT_NE(a.status().message().find("not valid zstd data"), std::string::npos)
      << a.status().message();

  auto b = decompress_bytes(std::string_view(z).substr(0, z.size() - 10));
  EXPECT_EQ(b.status().code(), StatusCode::kDataError);
  EXPECT_NE(b.status().message().find("truncated"), std::string::npos) << b.status().message();

  auto c = decompress_bytes("this is plain text, not zstd");
  EXPECT_EQ(c.status().code(), StatusCode::kDataError);
  EXPECT_EQ(decompress_bytes("").status().code(), StatusCode::kDataError);
  EXPECT_EQ(decompress_bytes(z + "garbage").status().code(), StatusCode::kDataError);
}

TEST(Compression, FileRoundTrip) {
  TempDir tmp;
  std::string data = sample(5 << 20, 11);
  std::string in = tmp.write("in", data);
  ASSERT_TRUE(compress_file(in, tmp.file("in.zst")).ok());
  EXPECT_LT(fs::file_size(tmp.file("in.zst")), data.size());
  // Files and bytes use the same format.
  EXPECT_EQ(*decompress_bytes(df::test::read_file(tmp.file("in.zst"))), data);
  ASSERT_TRUE(decompress_file(tmp.file("in.zst"), tmp.file("out")).ok());
  EXPECT_EQ(df::test::read_file(tmp.file("out")), data);

  tmp.write("empty", "");
  ASSERT_TRUE(compress_file(tmp.file("empty"), tmp.file("empty.zst")).ok());
  ASSERT_TRUE(decompress_file(tmp.file("empty.zst"), tmp.file("empty.out")).ok());
  EXPECT_EQ(df::test::read_file(tmp.file("empty.out")), "");
  EXPECT_EQ(df::test::list_dir(tmp.path()),
            (std::vector<std::string>{"empty", "empty.out", "empty.zst", "in", "in.zst", "out"}));
}

TEST(Compression, CorruptFilesAreDataErrorsAndLeaveNoOutput) {
  TempDir tmp;
  std::string z = *compress_bytes(sample(300000, 5));
  std::string flipped = z;
  flipped[z.size() / 3] ^= 0x01;
  tmp.write("flipped.zst", flipped);
  tmp.write("truncated.zst", z.substr(0, z.size() / 2));
  tmp.write("plain", "not compressed at all");
  tmp.write("empty", "");
  for (const char* name : {"flipped.zst", "truncated.zst", "plain", "empty"}) {
    Status st = decompress_file(tmp.file(name), tmp.file("out"));
    EXPECT_EQ(st.code(), StatusCode::kDataError) << name << ": " << st.to_string();
    EXPECT_NE(st.message().find(tmp.file(name)), std::string::npos) << st.message();
    EXPECT_FALSE(fs::exists(tmp.file("out"))) << name;
  }
  EXPECT_EQ(decompress_file(tmp.file("missing"), tmp.file("out")).code(), StatusCode::kNotFound);
  EXPECT_EQ(compress_file(tmp.file("missing"), tmp.file("out")).code(), StatusCode::kNotFound);
  EXPECT_EQ(df::test::list_dir(tmp.path()),
            (std::vector<std::string>{"empty", "flipped.zst", "plain", "truncated.zst"}));
}

TEST(Compression, FilesStreamInConstantMemory) {
  TempDir tmp;
  std::string in = tmp.file("big");
  {
    std::ofstream out(in, std::ios::binary);
    for (int i = 0; i < 96; ++i) {
      std::string chunk = sample(1 << 20, static_cast<uint32_t>(i));
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  size_t before = peak_rss_kb();
  ASSERT_TRUE(compress_file(in, tmp.file("big.zst")).ok());
  ASSERT_TRUE(decompress_file(tmp.file("big.zst"), tmp.file("big.out")).ok());
  size_t after = peak_rss_kb();
  EXPECT_LT(after - before, 16u * 1024)
      << "peak RSS grew by " << (after - before) << " KiB for 96 MiB";
  EXPECT_EQ(fs::file_size(tmp.file("big.out")), 96u << 20);
  EXPECT_EQ(*sha256_file(tmp.file("big.out")), *sha256_file(in));
}

TEST(Sha256, KnownVectorsAndFiles) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  TempDir tmp;
  std::string data = sample((3 << 20) + 17, 9);  // spans several 1 MiB reads
  auto h = sha256_file(tmp.write("f", data));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(*h, sha256_hex(data));
  EXPECT_EQ(*sha256_file(tmp.write("e", "")), sha256_hex(""));
  EXPECT_EQ(sha256_file(tmp.file("missing")).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(sha256_file(tmp.str()).status().code(), StatusCode::kIoError);  // a directory
}

// Run by hand:
//   checkpoint_test --gtest_also_run_disabled_tests --gtest_filter='*Throughput1GiB*'
TEST(Sha256, DISABLED_Throughput1GiB) {
  TempDir tmp;
  std::string path = tmp.file("big");
  {
    std::ofstream out(path, std::ios::binary);
    std::string chunk = sample(1 << 20, 1);
    for (int i = 0; i < 1024; ++i)
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  }
  ASSERT_TRUE(sha256_file(path).ok());  // warm the page cache
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(sha256_file(path).ok());
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("sha256_file 1 GiB (page cache warm): %.2f s = %.0f MiB/s\n", s, 1024 / s);
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(compress_file(path, tmp.file("big.zst")).ok());
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("compress_file 1 GiB (zstd 3, half random): %.2f s = %.0f MiB/s\n", s, 1024 / s);
  t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(decompress_file(tmp.file("big.zst"), tmp.file("big.out")).ok());
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("decompress_file 1 GiB: %.2f s = %.0f MiB/s\n", s, 1024 / s);
}

}  // namespace
}  // namespace df::checkpoint
