// Live regions of the console (sidecarhub.live): htmx polls a region's URL and swaps in the
// server's new rendering. A poll is skipped while the page is hidden, or while someone types in
// a field inside the region (a swap would throw their text away).
window.sidecarhubLive = {
  idle: function (region) {
    if (document.hidden) return false;
    var active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, textarea, select")) return false;
    var fields = region.querySelectorAll("input[type=text], textarea");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value) return false;
    }
    return true;
  },
};

// A poll answered with something other than the region itself (the login page once the session
// ended, after a redirect the browser followed silently) is not swapped into the region: the
// whole page is loaded again, so the person sees what the server says.
document.addEventListener("htmx:beforeSwap", function (event) {
  var region = event.detail.target;
  if (!event.detail.shouldSwap || !region.classList.contains("sh-live")) return;
  if (event.detail.serverResponse.indexOf('id="' + region.id + '"') === -1) {
    event.detail.shouldSwap = false;
    window.location.reload();
  }
});
