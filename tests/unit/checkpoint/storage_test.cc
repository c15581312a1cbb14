// Local directory CheckpointStorage and open_storage (engine/checkpoint/storage.h).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "engine/checkpoint/storage.h"
#include "tests/support/temp_dir.h"

namespace df::checkpoint {
namespace {

namespace fs = std::filesystem;
using df::test::TempDir;

std::unique_ptr<CheckpointStorage> open_local(const std::string& dir) {
  auto s = open_local_storage(dir);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return std::move(s).value();
}

// Every file under dir (recursive), relative, sorted.
std::vector<std::string> all_files(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> keys_of(const std::vector<ObjectInfo>& v) {
  std::vector<std::string> out;
  for (const auto& o : v) out.push_back(o.key);
  return out;
}

TEST(LocalStorage, PutGetBytesRoundTripAndOverwrite) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  ASSERT_TRUE(s->put_bytes("p/_CURRENT", "7").ok());
  EXPECT_EQ(*s->get_bytes("p/_CURRENT"), "7");
  ASSERT_TRUE(s->put_bytes("p/_CURRENT", std::string(100000, 'x')).ok());
  EXPECT_EQ(*s->get_bytes("p/_CURRENT"), std::string(100000, 'x'));
  ASSERT_TRUE(s->put_bytes("p/empty", "").ok());
  EXPECT_EQ(*s->get_bytes("p/empty"), "");
  std::string binary("a\0b\xff", 4);
  ASSERT_TRUE(s->put_bytes("p/bin", binary).ok());
  EXPECT_EQ(*s->get_bytes("p/bin"), binary);
  EXPECT_EQ(all_files(tmp.file("root")),
            (std::vector<std::string>{"p/_CURRENT", "p/bin", "p/empty"}));
  EXPECT_EQ(s->describe(), "file://" + tmp.file("root"));
}

TEST(LocalStorage, PutFileCopiesAndGetFileLinksOnSameFilesystem) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  std::string content(3 << 20, '\0');
  std::mt19937 rng(1);
  for (auto& c : content) c = static_cast<char>(rng());
  std::string src = tmp.write("src/000012.sst", content);
  ASSERT_TRUE(s->put_file("p/shared/000012.sst", src).ok());
  // A copy, not a link: the source can be deleted or changed freely.
  struct stat a {
  }, b{};
  ASSERT_EQ(::stat(src.c_str(), &a), 0);
  ASSERT_EQ(::stat(tmp.file("root/p/shared/000012.sst").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  fs::remove(src);

  std::string dst = tmp.file("restore/node/0/000012.sst");
  ASSERT_TRUE(s->get_file("p/shared/000012.sst", dst).ok());
  EXPECT_EQ(df::test::read_file(dst), content);
  struct stat c {};
  ASSERT_EQ(::stat(dst.c_str(), &c), 0);
  EXPECT_EQ(c.st_ino, b.st_ino) << "same filesystem: expected a hard link";

  // Again onto the same link (rename is a no-op then) and onto another file.
  ASSERT_TRUE(s->get_file("p/shared/000012.sst", dst).ok());
  tmp.write("restore/node/0/other", "old");
  ASSERT_TRUE(s->get_file("p/shared/000012.sst", tmp.file("restore/node/0/other")).ok());
  EXPECT_EQ(df::test::read_file(tmp.file("restore/node/0/other")), content);
  EXPECT_EQ(df::test::list_dir(tmp.file("restore/node/0")),
            (std::vector<std::string>{"000012.sst", "other"}));
}

TEST(LocalStorage, GetFileCopiesAcrossFilesystems) {
  // /dev/shm is a tmpfs on Linux: link(2) fails with EXDEV, so this copies.
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  ASSERT_TRUE(s->put_bytes("p/x", "cross-device bytes").ok());
  std::string dst = "/dev/shm/df-storage-test-" + std::to_string(::getpid());
  ASSERT_TRUE(s->get_file("p/x", dst + "/x").ok());
  EXPECT_EQ(df::test::read_file(dst + "/x"), "cross-device bytes");
  EXPECT_EQ(df::test::list_dir(dst), (std::vector<std::string>{"x"}));
  fs::remove_all(dst);
}

TEST(LocalStorage, MissingKeysAreNotFound) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  EXPECT_EQ(s->get_bytes("p/_CURRENT").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(s->get_file("p/nope", tmp.file("out")).code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(tmp.file("out")));
  EXPECT_EQ(s->put_file("p/x", tmp.file("missing-source")).code(), StatusCode::kNotFound);
  ASSERT_TRUE(s->put_bytes("p/file", "x").ok());
  // A key below an object ("p/file/x") is simply absent.
  EXPECT_EQ(s->get_bytes("p/file/x").status().code(), StatusCode::kNotFound);
}

TEST(LocalStorage, NoTemporaryFilesAreLeft) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  std::string src = tmp.write("src", std::string(1 << 20, 'a'));
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(s->put_bytes("p/k" + std::to_string(i % 3), std::to_string(i)).ok());
    ASSERT_TRUE(s->put_file("p/f" + std::to_string(i % 2), src).ok());
  }
  EXPECT_EQ(all_files(tmp.file("root")),
            (std::vector<std::string>{"p/f0", "p/f1", "p/k0", "p/k1", "p/k2"}));
}

TEST(LocalStorage, InterruptedPutIsInvisible) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  ASSERT_TRUE(s->put_bytes("p/checkpoints/1/manifest.json", "{}").ok());
  // What a crash in the middle of a put leaves behind: a temporary file.
  tmp.write("root/p/checkpoints/2/.df-tmp-123-0-deadbeef", "half a manifest");
  tmp.write("root/p/.df-tmp-9-9-00000000", "half");
  auto listed = s->list("p/");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(keys_of(*listed), (std::vector<std::string>{"p/checkpoints/1/manifest.json"}));
  EXPECT_EQ(s->get_bytes("p/checkpoints/2/manifest.json").status().code(), StatusCode::kNotFound);
  // Temporary names cannot be addressed as keys.
  EXPECT_EQ(s->get_bytes("p/.df-tmp-9-9-00000000").status().code(), StatusCode::kInvalidArgument);
}

TEST(LocalStorage, ListIsRecursiveByteOrderedWithSizes) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  std::vector<std::string> keys = {"p/shared/b.sst",
                                   "p/shared/B.sst",
                                   "p/shared/a-1",
                                   "p/shared/a/1",
                                   "p/checkpoints/10/manifest.json",
                                   "p/checkpoints/9/manifest.json",
                                   "p/_CURRENT",
                                   "q/_CURRENT",
                                   "p/shared/\xc3\xa9",
                                   "pp/x"};
  for (size_t i = 0; i < keys.size(); ++i)
    ASSERT_TRUE(s->put_bytes(keys[i], std::string(i, 'z')).ok());

  auto all = s->list("");
  ASSERT_TRUE(all.ok()) << all.status().to_string();
  std::vector<std::string> sorted = keys;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(keys_of(*all), sorted);
  for (const auto& o : *all) {
    size_t i = std::find(keys.begin(), keys.end(), o.key) - keys.begin();
    EXPECT_EQ(o.size, i) << o.key;
  }
  auto p = s->list("p/");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(keys_of(*p), (std::vector<std::string>{"p/_CURRENT", "p/checkpoints/10/manifest.json",
                                                   "p/checkpoints/9/manifest.json",
                                                   "p/shared/B.sst", "p/shared/a-1", "p/shared/a/1",
                                                   "p/shared/b.sst", "p/shared/\xc3\xa9"}));
  auto shared_a = s->list("p/shared/a");  // a prefix that is not a directory
  ASSERT_TRUE(shared_a.ok());
  EXPECT_EQ(keys_of(*shared_a), (std::vector<std::string>{"p/shared/a-1", "p/shared/a/1"}));
  auto none = s->list("nothing/here/");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(s->list("/abs").status().code(), StatusCode::kInvalidArgument);
}

TEST(LocalStorage, RemoveDeletesAndPrunesEmptyDirectories) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  ASSERT_TRUE(s->put_bytes("p/checkpoints/1/manifest.json", "1").ok());
  ASSERT_TRUE(s->put_bytes("p/checkpoints/2/manifest.json", "2").ok());
  ASSERT_TRUE(s->remove("p/checkpoints/1/manifest.json").ok());
  EXPECT_EQ(s->get_bytes("p/checkpoints/1/manifest.json").status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(tmp.file("root/p/checkpoints/1")));
  EXPECT_TRUE(fs::exists(tmp.file("root/p/checkpoints/2/manifest.json")));
  EXPECT_TRUE(s->remove("p/checkpoints/1/manifest.json").ok()) << "removing a missing key is OK";
  EXPECT_TRUE(s->remove("never/was").ok());
  ASSERT_TRUE(s->remove("p/checkpoints/2/manifest.json").ok());
  EXPECT_TRUE(fs::exists(tmp.file("root"))) << "the root stays";
  EXPECT_TRUE(fs::is_empty(tmp.file("root")));
  // A put into a directory removed meanwhile recreates it.
  ASSERT_TRUE(s->put_bytes("p/checkpoints/3/manifest.json", "3").ok());
  EXPECT_EQ(*s->get_bytes("p/checkpoints/3/manifest.json"), "3");
}

TEST(LocalStorage, RejectsBadKeys) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  for (const std::string& key :
       std::vector<std::string>{"", "/abs", "a/../b", "..", "a/..", "./a", "a/./b", "a//b", "a/",
                                "a/.df-tmp-x", std::string("a\0b", 3)}) {
    Status st = s->put_bytes(key, "x");
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << "key '" << key << "'";
    EXPECT_NE(st.message().find("storage key"), std::string::npos) << st.message();
    EXPECT_EQ(s->get_bytes(key).status().code(), StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(s->get_file(key, tmp.file("o")).code(), StatusCode::kInvalidArgument) << key;
    EXPECT_EQ(s->remove(key).code(), StatusCode::kInvalidArgument) << key;
  }
  EXPECT_TRUE(fs::is_empty(tmp.file("root")));
  EXPECT_TRUE(validate_key("p/shared/000012.sst").ok());
  EXPECT_TRUE(validate_key("a..b/.hidden").ok());
}

TEST(LocalStorage, ConcurrentPutsOfOneKeyLeaveOneWholeValue) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::string value(200000, static_cast<char>('a' + t));
      for (int i = 0; i < 25; ++i) {
        if (!s->put_bytes("p/_CURRENT", value).ok()) ++failures;
        auto got = s->get_bytes("p/_CURRENT");
        if (!got.ok() || got->size() != value.size() ||
            std::count(got->begin(), got->end(), got->front()) != static_cast<long>(value.size())) {
          ++failures;  // a torn or missing value
        }
        if (!s->remove("p/other" + std::to_string(t)).ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(all_files(tmp.file("root")), (std::vector<std::string>{"p/_CURRENT"}));
}

S3Options s3_options(const std::string& endpoint) {
  S3Options o;
  o.endpoint = endpoint;
  return o;
}

TEST(OpenStorage, ParsesUrls) {
  TempDir tmp;
  auto a = open_storage("file://" + tmp.file("a"));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ((*a)->describe(), "file://" + tmp.file("a"));
  EXPECT_TRUE(fs::is_directory(tmp.file("a")));
  auto b = open_storage(tmp.file("b/c/"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->describe(), "file://" + tmp.file("b/c"));
  ASSERT_TRUE((*b)->put_bytes("k", "v").ok());
  EXPECT_EQ(df::test::read_file(tmp.file("b/c/k")), "v");

  auto s3 = open_storage("s3://my-bucket/some/prefix/", s3_options("http://127.0.0.1:1"));
  ASSERT_TRUE(s3.ok()) << s3.status().to_string();
  EXPECT_EQ((*s3)->describe(), "s3://my-bucket/some/prefix");
  auto s3b = open_storage("s3://bucket-only");
  ASSERT_TRUE(s3b.ok());
  EXPECT_EQ((*s3b)->describe(), "s3://bucket-only");

  EXPECT_EQ(open_storage("s3://").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_storage("s3://b/../x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_storage("gs://bucket/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_storage("file://host/x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(open_storage("").status().code(), StatusCode::kInvalidArgument);
  tmp.write("plain-file", "x");
  EXPECT_FALSE(open_storage(tmp.file("plain-file")).ok());
}

// Measures put_file/get_file of 1 GiB; run by hand:
//   checkpoint_test --gtest_also_run_disabled_tests --gtest_filter='*CopyThroughput*'
TEST(LocalStorage, DISABLED_CopyThroughput1GiB) {
  TempDir tmp;
  auto s = open_local(tmp.file("root"));
  std::string src = tmp.file("big");
  {
    std::ofstream out(src, std::ios::binary);
    std::string chunk(1 << 20, '\0');
    std::mt19937_64 rng(7);
    for (auto& c : chunk) c = static_cast<char>(rng());
    for (int i = 0; i < 1024; ++i) {
      chunk[0] = static_cast<char>(i);
      out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
  }
  ::sync();
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s->put_file("p/shared/big", src).ok());
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(s->get_file("p/shared/big", tmp.file("restored-link")).ok());
  auto t2 = std::chrono::steady_clock::now();
  double put_s = std::chrono::duration<double>(t1 - t0).count();
  std::printf("put_file 1 GiB (copy + fsync + rename): %.2f s = %.0f MiB/s\n", put_s, 1024 / put_s);
  std::printf("get_file 1 GiB (hard link): %.3f ms\n",
              std::chrono::duration<double, std::milli>(t2 - t1).count());
}

}  // namespace
}  // namespace df::checkpoint
