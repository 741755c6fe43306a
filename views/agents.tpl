{{%AUTOESCAPE context="HTML"}}
<div class="stack">
<h1>Agents</h1>
<section aria-labelledby="pending-h">
<h2 id="pending-h">Pending requests</h2>
{{#NO_PENDING}}
<p class="empty">There are no pending requests</p>
{{/NO_PENDING}}
<div class="table-wrap">
<table class="table-cards" aria-labelledby="pending-h">
<thead>
<tr>
<th scope="col">Name</th>
<th scope="col">Email</th>
<th scope="col">Requested</th>
<th scope="col"><span class="visually-hidden">Decision</span></th>
</tr>
</thead>
<tbody>
{{#PENDING}}
<tr>
<td data-label="Name">{{NAME}}</td>
<td data-label="Email" class="break-any">{{EMAIL}}</td>
<td data-label="Requested" class="nowrap"><time datetime="{{REQUESTED_ISO}}" title="{{REQUESTED_TEXT}}">{{REQUESTED_AGO}}</time></td>
<td data-label="Decision"><div class="row-actions">
<form class="inline-form" method="post" action="/admin/agents/{{ID}}/approve">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-primary">Approve<span class="visually-hidden"> {{NAME}}</span></button>
</form>
<form class="inline-form" method="post" action="/admin/agents/{{ID}}/reject" data-confirm="Reject the agent request from {{NAME}}?">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small">Reject<span class="visually-hidden"> {{NAME}}</span></button>
</form>
</div></td>
</tr>
{{/PENDING}}
</tbody>
</table>
</div>
</section>
<section aria-labelledby="active-h">
<h2 id="active-h">Active agents</h2>
{{#NO_AGENTS}}
<p class="empty">There are no active agents yet</p>
{{/NO_AGENTS}}
<div class="table-wrap">
<table class="table-cards" aria-labelledby="active-h">
<thead>
<tr>
<th scope="col">Name</th>
<th scope="col">Email</th>
<th scope="col" class="num">Open tickets</th>
<th scope="col" class="num">Average rating</th>
<th scope="col" class="num">Ratings</th>
<th scope="col">Availability</th>
<th scope="col"><span class="visually-hidden">Actions</span></th>
</tr>
</thead>
<tbody>
{{#AGENT}}
<tr>
<td data-label="Name">{{NAME}}</td>
<td data-label="Email" class="break-any">{{EMAIL}}</td>
<td data-label="Open tickets" class="num">{{OPEN_COUNT}}</td>
<td data-label="Average rating" class="num">{{AVG_RATING}}</td>
<td data-label="Ratings" class="num">{{RATINGS}}</td>
<td data-label="Availability">{{#AVAILABLE}}<span class="badge badge-resolved">Available</span>{{/AVAILABLE}}{{#UNAVAILABLE}}<span class="badge badge-closed">Unavailable</span>{{/UNAVAILABLE}}</td>
<td data-label="Actions"><div class="row-actions">
<form class="inline-form" method="post" action="/admin/agents/{{ID}}/disable" data-confirm="Disable {{NAME}}? They are logged out and their open tickets become unassigned.">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Disable<span class="visually-hidden"> {{NAME}}</span></button>
</form>
{{#HAS_2FA}}
<form class="inline-form" method="post" action="/admin/users/{{ID}}/2fa/reset" data-confirm="Reset the two-factor sign-in of {{NAME}}? They set it up again at their next sign-in.">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small">Reset two-factor<span class="visually-hidden"> of {{NAME}}</span></button>
</form>
{{/HAS_2FA}}
</div></td>
</tr>
{{/AGENT}}
</tbody>
</table>
</div>
</section>
<section class="card form-card" aria-labelledby="create-h">
<h2 id="create-h">Create an agent</h2>
<p class="lead">The new agent gets an email with a code to set their password.</p>
<form class="form" method="post" action="/admin/agents" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field-row">
<div class="field">
<label for="first_name">First name</label>
<input type="text" id="first_name" name="first_name" value="{{FIRST_NAME}}" autocomplete="off" required{{#ERR_FIRST_NAME}} aria-invalid="true" aria-describedby="first_name-error"{{/ERR_FIRST_NAME}}>
{{#ERR_FIRST_NAME}}
<p class="field-error" id="first_name-error">{{MSG}}</p>
{{/ERR_FIRST_NAME}}
</div>
<div class="field">
<label for="last_name">Last name</label>
<input type="text" id="last_name" name="last_name" value="{{LAST_NAME}}" autocomplete="off" required{{#ERR_LAST_NAME}} aria-invalid="true" aria-describedby="last_name-error"{{/ERR_LAST_NAME}}>
{{#ERR_LAST_NAME}}
<p class="field-error" id="last_name-error">{{MSG}}</p>
{{/ERR_LAST_NAME}}
</div>
</div>
<div class="field">
<label for="email">Email</label>
<input type="email" id="email" name="email" value="{{EMAIL}}" autocomplete="off" spellcheck="false" required{{#ERR_EMAIL}} aria-invalid="true" aria-describedby="email-error"{{/ERR_EMAIL}}>
{{#ERR_EMAIL}}
<p class="field-error" id="email-error">{{MSG}}</p>
{{/ERR_EMAIL}}
</div>
<div class="actions">
<button type="submit" class="btn btn-primary">Create agent</button>
</div>
</form>
</section>
</div>
