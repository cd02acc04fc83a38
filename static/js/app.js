// What every page shares: a plain-words message when an htmx request fails.
const show = (text) => {
  const main = document.getElementById("main");
  if (!main) return;
  let box = document.getElementById("request-problem");
  if (!box) {
    box = document.createElement("div");
    box.id = "request-problem";
    box.className = "alert alert-error";
    box.setAttribute("role", "alert");
    main.prepend(box);
  }
  box.textContent = text;
};

document.addEventListener("htmx:responseError", (event) => {
  const code = event.detail.xhr ? event.detail.xhr.status : 0;
  show(code === 404 ? "That item no longer exists." : `The server answered with an error (${code}); try again.`);
});
document.addEventListener("htmx:sendError", () => {
  show("The server could not be reached; check your connection.");
});
