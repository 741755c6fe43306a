{{%AUTOESCAPE context="HTML"}}
<div class="stack">
<h1>Webhooks</h1>
<p class="lead">Endpoints that receive ticket events as signed JSON POSTs. Notes are never sent.</p>
{{#SECRET}}
<section class="card" aria-labelledby="secret-h" role="status">
<h2 id="secret-h">Signing secret</h2>
<p>The secret of <strong>{{SECRET_URL}}</strong> is shown this once. Each delivery carries <code>X-CCR-Signature: sha256=</code> and the hex HMAC-SHA-256 of its body under this secret.</p>
<p><label for="webhook-secret">Secret</label>
<input type="text" id="webhook-secret" class="mono" value="{{SECRET}}" readonly autocomplete="off" spellcheck="false" data-secret></p>
</section>
{{/SECRET}}
<section aria-labelledby="hooks-h">
<h2 id="hooks-h">Endpoints</h2>
{{#NO_HOOKS}}
<p class="empty">There are no webhook endpoints</p>
{{/NO_HOOKS}}
{{#HOOK}}
<article class="card" aria-labelledby="hook-{{ID}}-h" data-webhook="{{ID}}">
<h3 id="hook-{{ID}}-h" class="break">{{URL}}</h3>
<p>Events: {{EVENTS}}. Added <time datetime="{{CREATED_ISO}}" title="{{CREATED_TEXT}}">{{CREATED_AGO}}</time>.</p>
<form class="inline-form" method="post" action="/admin/webhooks/{{ID}}/delete" data-confirm="Delete this endpoint? Nothing more is sent to it.">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">Delete<span class="visually-hidden"> endpoint {{URL}}</span></button>
</form>
{{#NO_DELIVERIES}}
<p class="empty">Nothing delivered yet</p>
{{/NO_DELIVERIES}}
{{#HAS_DELIVERIES}}
<div class="table-wrap">
<table class="table-cards" aria-label="Recent deliveries to {{URL}}">
<thead>
<tr>
<th scope="col">Time</th>
<th scope="col">Event</th>
<th scope="col">Ticket</th>
<th scope="col">Status</th>
<th scope="col" class="num">Attempts</th>
<th scope="col">Last result</th>
</tr>
</thead>
<tbody>
{{#DELIVERY}}
<tr data-event-id="{{EVENT_ID}}">
<td data-label="Time" class="nowrap"><time datetime="{{TIME_ISO}}" title="{{TIME_TEXT}}">{{TIME_AGO}}</time></td>
<td data-label="Event">{{EVENT}}</td>
<td data-label="Ticket"><a href="/tickets/{{TICKET}}">#{{TICKET}}</a></td>
<td data-label="Status" data-status="{{STATUS}}">{{STATUS}}{{#NEXT}}, next try <time datetime="{{NEXT_ISO}}" title="{{NEXT_TEXT}}">{{NEXT_AGO}}</time>{{/NEXT}}</td>
<td data-label="Attempts" class="num">{{ATTEMPTS}}</td>
<td data-label="Last result" class="break">{{RESULT}}</td>
</tr>
{{/DELIVERY}}
</tbody>
</table>
</div>
{{/HAS_DELIVERIES}}
</article>
{{/HOOK}}
</section>
<section class="card form-card" aria-labelledby="create-h">
<h2 id="create-h">Add an endpoint</h2>
<form class="form" method="post" action="/admin/webhooks" novalidate>
<input type="hidden" name="csrf_token" value="{{CSRF}}">
{{#FORM_ERROR}}
<p class="form-error" role="alert">{{MSG}}</p>
{{/FORM_ERROR}}
<div class="field">
<label for="url">URL</label>
<input type="url" id="url" name="url" value="{{URL}}" autocomplete="off" required aria-describedby="url-hint{{#ERR_URL}} url-error{{/ERR_URL}}"{{#ERR_URL}} aria-invalid="true"{{/ERR_URL}}>
<p class="hint" id="url-hint">An https://{{#ALLOW_HTTP}} or http://{{/ALLOW_HTTP}} address that is not loopback, link-local or private.</p>
{{#ERR_URL}}
<p class="field-error" id="url-error">{{MSG}}</p>
{{/ERR_URL}}
</div>
<fieldset class="field"{{#ERR_EVENTS}} aria-describedby="events-error"{{/ERR_EVENTS}}>
<legend>Events</legend>
{{#EVENT_CHOICE}}
<div class="check">
<input type="checkbox" id="event-{{N}}" name="events" value="{{NAME}}"{{#CHECKED}} checked{{/CHECKED}}>
<label for="event-{{N}}">{{NAME}}</label>
</div>
{{/EVENT_CHOICE}}
{{#ERR_EVENTS}}
<p class="field-error" id="events-error">{{MSG}}</p>
{{/ERR_EVENTS}}
</fieldset>
<button type="submit" class="btn btn-primary">Add endpoint</button>
</form>
</section>
</div>
