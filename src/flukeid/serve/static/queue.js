// Upload an encounter, then open its review page.
const form = document.getElementById("upload");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("upload-status");
    const body = new FormData();
    for (const file of document.getElementById("files").files) body.append("files", file);
    status.textContent = "Uploading and matching…";
    const response = await fetch("/api/encounters", { method: "POST", body, credentials: "same-origin" });
    const answer = await response.json();
    if (!response.ok) { status.textContent = `Refused (${response.status}): ${answer.detail}`; return; }
    window.location.href = `/review/${answer.id}`;
  });
}
