// Keyboard review: 1-5 choose a candidate, Enter confirms, N new individual, R reject, S skip, Z zoom.
const review = document.getElementById("review");
const message = document.getElementById("message");
const candidates = [...document.querySelectorAll(".candidate")];
const newId = document.getElementById("new-id");
let chosen = null;

function choose(index) {
  if (index >= candidates.length) return;
  candidates.forEach((c, i) => c.classList.toggle("selected", i === index));
  chosen = candidates[index].dataset.individual;
  message.textContent = `Enter to confirm ${chosen}`;
}

async function decide(action, individual) {
  const url = `/api/encounters/${review.dataset.encounter}/decision`;
  const body = JSON.stringify({ action, individual, version: Number(review.dataset.version) });
  const response = await fetch(url, {
    method: "POST", body, credentials: "same-origin", headers: { "Content-Type": "application/json" },
  });
  const answer = await response.json();
  if (!response.ok) { message.textContent = `Refused (${response.status}): ${answer.detail}`; return; }
  message.replaceChildren();  // built from text nodes: an ID is never read as HTML
  if (individual) {
    const link = document.createElement("a");
    link.href = `/individuals/${encodeURIComponent(individual)}`;
    link.textContent = individual;
    message.append("Saved: ", link, ` (decision ${answer.id})`);
  } else {
    message.textContent = `Rejected (decision ${answer.id})`;
  }
  review.dataset.decided = "yes";
}

function toggleZoom() { review.classList.toggle("zoomed"); }
document.querySelectorAll(".query-photo").forEach((img) => img.addEventListener("click", toggleZoom));

document.addEventListener("keydown", (event) => {
  if (event.target === newId) {
    if (event.key === "Enter" && newId.value.trim()) decide("new", newId.value.trim());
    if (event.key === "Escape") newId.hidden = true;
    return;
  }
  if (event.target.tagName === "INPUT" || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key.toLowerCase();
  const writable = review.dataset.canWrite === "yes" && review.dataset.decided !== "yes";
  if (key >= "1" && key <= "5") choose(Number(key) - 1);
  else if (key === "enter" && chosen && writable) decide("match", chosen);
  else if (key === "n" && writable && newId) { newId.hidden = false; event.preventDefault(); newId.focus(); }
  else if (key === "r" && writable) decide("reject", null);
  else if (key === "s") window.location.href = review.dataset.next ? `/review/${review.dataset.next}` : "/";
  else if (key === "z") toggleZoom();
});
