#include "fsck/writer.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <ctime>

#include "engine/buffer_pool.h"

namespace pagefs::fsck {
namespace {

constexpr size_t kWriteBatch = 256;

}  // namespace

Result<std::unique_ptr<Writer>> Writer::open(Device& device, const Superblock& sb) {
  PAGEFS_ASSIGN(auto journal, Journal::open(device, sb, sb.journal_tail, sb.journal_sequence));
  return std::unique_ptr<Writer>(new Writer(device, sb, std::move(journal)));
}

std::unique_ptr<AlignedBuffer> Writer::new_page() const {
  const size_t alignment = std::max<size_t>(kIoAlignment, device_.block_size());
  auto page = std::make_unique<AlignedBuffer>(sb_.page_size, alignment);
  memset(page->data(), 0, sb_.page_size);
  return page;
}

// Sorted by page and sent in batches, so that runs of pages (a new tree is
// allocated in order) become few large writes.
Status Writer::write_ahead(std::vector<PageImage>& pages) {
  std::sort(pages.begin(), pages.end(),
            [](const PageImage& a, const PageImage& b) { return a.page < b.page; });
  for (size_t first = 0; first < pages.size(); first += kWriteBatch) {
    const size_t n = std::min(kWriteBatch, pages.size() - first);
    std::vector<iovec> iov(n);
    std::vector<IoRequest> batch(n);
    for (size_t i = 0; i < n; i++) {
      const PageImage& p = pages[first + i];
      assert(p.page < sb_.page_count);
      iov[i] = iovec{p.bytes->data(), sb_.page_size};
      batch[i] = IoRequest{p.page * sb_.page_size, std::span<const iovec>(&iov[i], 1)};
    }
    PAGEFS_TRY(device_.write(batch));
  }
  return ok_status();
}

PageImage Writer::superblock_image(Superblock sb, uint64_t copy) const {
  PageImage image{copy, new_page()};
  sb.header.magic = kPageMagic;
  sb.header.type = uint16_t(PageType::kSuperblock);
  sb.header.flags = 0;
  sb.header.reserved = 0;
  sb.header.page_no = copy;
  memcpy(image.bytes->data(), &sb, sizeof sb);
  stamp_meta_page(reinterpret_cast<std::byte*>(image.bytes->data()), sb.page_size);
  return image;
}

// Steps: stamp, journal (the commit record is THE commit), home, checkpoint.
Status Writer::commit(std::vector<PageImage>& images, const Superblock& sb) {
  assert(images.size() <= max_images());
  const uint64_t lsn = journal_->head();
  for (PageImage& image : images) {
    auto* h = reinterpret_cast<PageHeader*>(image.bytes->data());
    h->lsn = lsn;
    stamp_meta_page(reinterpret_cast<std::byte*>(image.bytes->data()), sb_.page_size);
  }
  sb_ = sb;
  sb_.generation++;
  sb_.write_time = time(nullptr);
  sb_.header.lsn = lsn;
  images.push_back(superblock_image(sb_, 0));
  for (const PageImage& image : images) {
    PAGEFS_TRY(journal_->add_image(PageNo{image.page},
                                   reinterpret_cast<const std::byte*>(image.bytes->data())));
  }
  // barrier: the write_ahead pages must be durable before the commit record.
  PAGEFS_TRY(journal_->commit({}, /*barrier=*/true));
  images.pop_back();  // page 0 goes home with the checkpoint
  PAGEFS_TRY(write_home(images));
  return checkpoint();
}

Status Writer::write_home(std::vector<PageImage>& pages) {
  if (pages.empty()) return ok_status();
  PAGEFS_TRY(write_ahead(pages));
  return device_.flush();
}

// Everything is home: the journal is empty again. Page 0, flush, page 1,
// flush, so that one copy is always whole.
Status Writer::checkpoint() {
  journal_->set_tail(journal_->head(), journal_->next_sequence());
  sb_.journal_tail = journal_->tail();
  sb_.journal_sequence = journal_->tail_sequence();
  sb_.generation++;
  for (uint64_t copy = 0; copy < 2; copy++) {
    PageImage image = superblock_image(sb_, copy);
    PAGEFS_TRY(device_.write_at(copy * sb_.page_size, image.bytes->data(), sb_.page_size));
    PAGEFS_TRY(device_.flush());
  }
  return ok_status();
}

}  // namespace pagefs::fsck
