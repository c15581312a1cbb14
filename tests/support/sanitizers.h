// Whether this build runs under ASan or TSan. g++ defines __SANITIZE_*__;
// clang answers __has_feature instead. Tests scale their work down under a
// sanitizer and skip memory bounds, which the sanitizers' shadow memory
// distorts.
#pragma once

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DF_SANITIZED 1
#endif
#endif

namespace df::test {
#if defined(DF_SANITIZED)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
}  // namespace df::test
