{{%AUTOESCAPE context="HTML"}}
<div class="medium stack">
<h1>Your sessions</h1>
<section class="card" aria-labelledby="sessions-h">
<h2 id="sessions-h">Signed in now</h2>
<p>Every browser where your account is signed in. End any you do not recognise, then change your password.</p>
<div class="table-wrap">
<table class="table-cards" aria-labelledby="sessions-h">
<thead>
<tr>
<th scope="col">Browser</th>
<th scope="col">Address</th>
<th scope="col">Signed in</th>
<th scope="col">Last seen</th>
<th scope="col"><span class="visually-hidden">Actions</span></th>
</tr>
</thead>
<tbody>
{{#SESSION}}
<tr id="session-{{ID}}">
<td data-label="Browser">{{BROWSER}}{{#THIS}} <strong class="badge">this one</strong>{{/THIS}}</td>
<td data-label="Address">{{ADDR}}</td>
<td data-label="Signed in"><time datetime="{{CREATED_ISO}}">{{CREATED_TEXT}}</time></td>
<td data-label="Last seen"><time datetime="{{SEEN_ISO}}">{{SEEN_AGO}}</time></td>
<td data-label="Actions">
{{#OTHER}}
<form class="inline-form" method="post" action="/account/sessions/{{ID}}/end">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<button type="submit" class="btn btn-small btn-danger">End<span class="visually-hidden"> the session of {{BROWSER}} from {{ADDR}}</span></button>
</form>
{{/OTHER}}
</td>
</tr>
{{/SESSION}}
</tbody>
</table>
</div>
{{#HAS_OTHERS}}
<form class="form" method="post" action="/account/sessions/end-others">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<div class="actions">
<button type="submit" class="btn btn-danger">End every other session</button>
</div>
</form>
{{/HAS_OTHERS}}
</section>
</div>
