Subject: [#{{TICKET}}] Needs an agent: {{SUBJECT}}

Hello,

{{NAME}} <{{EMAIL}}> raised ticket #{{TICKET}}, "{{SUBJECT}}".
It needs assignment:

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
